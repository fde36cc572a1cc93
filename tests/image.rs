//! veil's CPU container image, assembled without a Docker engine by scripts/build_image.sh
//! (scripts/test.sh builds it first), unpacked and run the way its OCI configuration says — its
//! entrypoint and command, its non-root user, its environment — in a chroot of its root
//! filesystem, against moto with the task role's policy from
//! deploy/cloudformation/ingest.yaml and configured by deploy/cloudformation/service.yaml's
//! environment: one photo becomes one anonymised copy in each account.

mod common;

use std::process::Command;

use common::cloud::{Daemon, Emulator, put};
use common::observe::{assert_all_accounted_for, wait_anonymised};
use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_image_runs_as_its_own_user_and_anonymises_an_object_into_the_three_accounts() {
    let layout = root().join(".cache/image/oci");
    assert!(
        layout.join("index.json").exists(),
        "{} is missing: run scripts/build_image.sh (scripts/test.sh does)",
        layout.display()
    );
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = unpacked.path().join("bundle");
    let status = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:veil", layout.display()))
        .arg(&bundle)
        .status()
        .expect("umoci runs (scripts/deploy_tools.sh installs it)");
    assert!(status.success(), "umoci unpack failed");
    let runtime: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let process = &runtime["process"];
    let (uid, gid) = (
        process["user"]["uid"].as_u64().unwrap(),
        process["user"]["gid"].as_u64().unwrap(),
    );
    assert_ne!(uid, 0, "the image runs as a non-root user");
    let args: Vec<&str> = process["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args.last(),
        Some(&"run"),
        "the image's command runs the daemon: {args:?}"
    );

    let moto = Emulator::moto();
    let mut command = Command::new("chroot");
    command
        .arg(format!("--userspec={uid}:{gid}"))
        .arg(bundle.join("rootfs"))
        .args(&args)
        .env_clear();
    for pair in process["env"].as_array().unwrap() {
        let (k, v) = pair.as_str().unwrap().split_once('=').unwrap();
        command.env(k, v);
    }
    let daemon = Daemon::launch(&moto, command, moto.service_env(), &[]);
    daemon.ready().await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "veil runs as {uid}: {status}"
    );

    let ingest = moto.s3(moto.who("ingest"));
    put(&ingest, "veil-raw", "cam1/t1.jpg", photo("t1.jpg")).await;
    wait_anonymised(&daemon, 1.0).await;
    assert_all_accounted_for(&moto, 1, &photo("t1.jpg"), &known_faces_of("t1.jpg")).await;
}
