//! Configuration files: parsing, the pipeline checks and the daemon checks. Any text must give a
//! configuration or a list of errors, never a panic.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data)
            && let Ok(config) = veil::config::Config::parse(text)
        {
            let _ = config.validate();
            let _ = veil::daemon::config::DaemonConfig::from_config(&config);
        }
    });
}
