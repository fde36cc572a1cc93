//! `veil models verify`: every manifest entry must hash right and load into ONNX Runtime.

use std::process::ExitCode;

use veil::config::Config;
use veil::manifest::Manifest;
use veil::runtime::Runtime;

pub fn verify(config: &Config) -> anyhow::Result<ExitCode> {
    let dir = &config.runtime.models_dir;
    let manifest = Manifest::load(dir)?;
    let runtime = Runtime::new(&config.runtime);
    let mut failed = 0;
    println!(
        "{:<14} {:<11} {:<6} {:<8} licence",
        "model", "family", "class", "status"
    );
    for entry in &manifest.models {
        let status = match manifest.verify(dir, &entry.name) {
            Err(e) => Err(e.to_string()),
            Ok(model) => match &runtime {
                Err(e) => Err(e.to_string()),
                Ok(rt) => rt
                    .session(&entry.name, &model.bytes)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            },
        };
        let family = serde_json::to_string(&entry.family).unwrap_or_default();
        let line = format!(
            "{:<14} {:<11} {:<6}",
            entry.name,
            family.trim_matches('"'),
            entry.class.as_str()
        );
        match status {
            Ok(()) => println!("{line} {:<8} {}", "ok", entry.licence),
            Err(e) => {
                failed += 1;
                println!("{line} {:<8} {}", "FAILED", entry.licence);
                eprintln!("veil: {e}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
