//! A fault-injecting TCP proxy on 127.0.0.1, put between veil and an emulator by pointing one of
//! veil's endpoints at it. The fault can be changed at any time and applies to connections
//! already open (veil's HTTP client keeps connections alive) as well as new ones.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Close every connection at once: the service is unreachable.
    Refuse,
    /// Hold connections open and forward nothing: the service hangs.
    Stall,
    /// Forward at most this many bytes of each response stream, then cut the connection.
    Cut(usize),
    /// Forward responses in 1 KiB pieces, this many milliseconds apart.
    Slow(u64),
    /// Answer every new request with S3's `503 SlowDown` (close open connections).
    SlowDown,
}

pub struct Proxy {
    pub endpoint: String,
    fault: Arc<Mutex<Fault>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let shared = fault.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream.clone(), shared.clone()));
            }
        });
        Self {
            endpoint,
            fault,
            task,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

fn current(fault: &Mutex<Fault>) -> Fault {
    *fault.lock().unwrap()
}

async fn serve(mut client: TcpStream, upstream: String, fault: Arc<Mutex<Fault>>) {
    match current(&fault) {
        Fault::Refuse => return,
        Fault::SlowDown => return slow_down(client).await,
        _ => {}
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = {
        let (r, w) = server.into_split();
        (r, w)
    };
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !wait_while_stalled(&fault).await {
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let responses = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0usize;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !wait_while_stalled(&fault).await {
                return;
            }
            let mut chunk = &buf[..n];
            match current(&fault) {
                Fault::Cut(limit) => {
                    let room = limit.saturating_sub(sent);
                    if chunk.len() >= room {
                        let _ = client_write.write_all(&chunk[..room]).await;
                        return;
                    }
                }
                Fault::Slow(ms) => {
                    while chunk.len() > 1024 {
                        if client_write.write_all(&chunk[..1024]).await.is_err() {
                            return;
                        }
                        chunk = &chunk[1024..];
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                _ => {}
            }
            sent += chunk.len();
            if client_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    // Whichever direction ends first ends the connection.
    tokio::select! {
        () = requests => {},
        () = responses => {},
    }
}

/// Waits while the fault is `Stall`; false when the connection must be dropped instead.
async fn wait_while_stalled(fault: &Mutex<Fault>) -> bool {
    loop {
        match current(fault) {
            Fault::Stall => tokio::time::sleep(Duration::from_millis(50)).await,
            Fault::Refuse | Fault::SlowDown => return false,
            _ => return true,
        }
    }
}

/// Reads one request head and answers it as S3 does when throttling.
async fn slow_down(mut client: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate.</Message></Error>";
    let response = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
}
