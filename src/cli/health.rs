//! `veil health`: asks a running daemon's `/healthz` (on `metrics.listen`) whether it is alive.
//! Container health checks run it (the image has no shell or curl): exit 0 when healthy, 1
//! otherwise, as Docker and ECS expect.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use veil::config::Config;

const TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(config: &Config) -> ExitCode {
    match probe(&config.metrics.listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veil: not healthy: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// GETs `/healthz` at `listen` (an unspecified address means this host) and wants a 200.
fn probe(listen: &str) -> anyhow::Result<()> {
    let mut addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("metrics.listen {listen:?} is not an address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("nothing answers on {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .with_context(|| format!("{addr} did not answer"))?;
    let status = String::from_utf8_lossy(&head[..n]);
    let code = status.split_whitespace().nth(1).unwrap_or("nothing");
    if code != "200" {
        bail!("{addr}/healthz answered {code}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // The whole request, so that closing does not reset the connection under the answer.
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).unwrap();
        });
        format!("0.0.0.0:{port}")
    }

    #[test]
    fn healthy_only_on_a_200_from_this_host() {
        probe(&serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ))
        .unwrap();
        let e = probe(&serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n")).unwrap_err();
        assert!(e.to_string().ends_with("answered 503"), "{e}");
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = probe(&closed.to_string()).unwrap_err();
        assert!(e.to_string().starts_with("nothing answers"), "{e}");
        assert!(probe("nowhere").is_err());
    }
}
