//! The `veil` binary end to end: folders in, anonymised folder and report out, failures counted.

mod common;

use std::path::Path;
use std::process::Command;

use common::smallset::{Plane, coverage};
use common::*;

fn veil(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.arg("--config").arg(config);
    c
}

/// Runs `veil anonymise INPUT --out OUT` with extra arguments.
fn anonymise(
    config: &Path,
    input: &Path,
    out: &Path,
    extra: &[&std::ffi::OsStr],
) -> std::process::Output {
    veil(config)
        .arg("anonymise")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn write_config(dir: &Path, models_dir: &Path) -> std::path::PathBuf {
    let lib = config().runtime.library.unwrap();
    let path = dir.join("veil.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\nlibrary = {:?}\nmodels_dir = {:?}\n",
            lib.display().to_string(),
            models_dir.display().to_string()
        ),
    )
    .unwrap();
    path
}

#[test]
fn anonymise_a_folder_keeps_its_tree_reports_each_image_and_counts_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::write(input.join("sub/t1.jpg"), photo("t1.jpg")).unwrap();
    std::fs::write(input.join("astronaut.png"), photo("astronaut.png")).unwrap();
    std::fs::write(input.join("sub/broken.jpg"), &photo("t1.jpg")[..5000]).unwrap();
    std::fs::write(input.join("notes.txt"), "not an image").unwrap();
    let out = tmp.path().join("out");
    let report = tmp.path().join("reports/report.jsonl"); // its folder does not exist yet
    let cfg = write_config(tmp.path(), &root().join("models"));

    let run = anonymise(
        &cfg,
        &input,
        &out,
        &["--report".as_ref(), report.as_os_str()],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        run.status.code(),
        Some(1),
        "one image failed, so the exit code says so: {stderr}"
    );
    assert!(
        stderr.contains("anonymised 2 of 3 images (1 failed)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken.jpg"),
        "the failure names the file: {stderr}"
    );
    assert!(out.join("sub/t1.jpg").is_file() && out.join("astronaut.png").is_file());
    assert!(
        !out.join("sub/broken.jpg").exists(),
        "nothing is written for a failed image"
    );
    let leftovers: Vec<_> = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty());
    // The copy itself: every known face of t1 is obscured by the coverage rule.
    let before = Plane::new(&rgb(&photo("t1.jpg")));
    let after = Plane::new(&rgb(&std::fs::read(out.join("sub/t1.jpg")).unwrap()));
    for face in known_faces_of("t1.jpg") {
        let c = coverage(&before, &after, &face.into()).unwrap();
        assert!(
            c.covered(),
            "face {face:?}: {:.2} obscured, {:.2} of its detail gone",
            c.obscured,
            c.energy_gone
        );
    }

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let t1 = lines
        .iter()
        .find(|l| l["input"].as_str().unwrap().ends_with("t1.jpg"))
        .unwrap();
    assert!(
        t1["detections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["class"] == "face")
            .count()
            >= 6
    );
    assert!(
        t1["detections"][0]["box"].as_array().unwrap().len() == 4
            && t1["detections"][0]["score"].is_f64()
    );
    // face models look at the picture mirrored as well in the passes that upscale it, and
    // in their second look at its edges; plate models once, and not at the edges again
    for plan in t1["plan"].as_array().unwrap() {
        let face = plan["model"].as_str().unwrap().starts_with("centerface");
        let passes = plan["passes"].as_array().unwrap();
        assert!(passes.len() >= 2, "{plan}");
        for pass in passes {
            let upscales = pass["scale"].as_f64().unwrap() > 1.0;
            assert_eq!(pass["mirrored"], face && upscales, "{plan}");
        }
        match plan.get("edges") {
            Some(edges) => assert!(face && edges["mirrored"] == true, "{plan}"),
            None => assert!(!face, "{plan}"),
        }
        assert!(passes[0]["scale"].as_f64().unwrap() > 1.0, "{plan}");
        // the finer passes keep objects up to a size; CenterFace's last pass, over the whole
        // image at 448 px, only those its whole pass shows larger than it boxes whole
        assert!(passes[0]["objects_up_to"].as_f64().unwrap() > 0.0, "{plan}");
        let last = passes.last().unwrap();
        assert_eq!(last["tiles"], 1, "{plan}");
        assert!(last.get("objects_up_to").is_none(), "{plan}");
        if face {
            let whole = &passes[passes.len() - 2];
            let (w, l) = (
                whole["scale"].as_f64().unwrap(),
                last["scale"].as_f64().unwrap(),
            );
            let from = last["objects_from"].as_f64().unwrap();
            assert!((from - 448.0 / w).abs() < 0.01 && l < w, "{plan}");
        } else {
            assert!(last.get("objects_from").is_none(), "{plan}");
        }
    }
    let manifest = veil::manifest::Manifest::load(&root().join("models")).unwrap();
    for m in t1["models"].as_array().unwrap() {
        assert_eq!(
            m["sha256"],
            manifest.get(m["name"].as_str().unwrap()).unwrap().sha256
        );
    }
    assert!(t1["timings"]["detect_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        t1["outputs"][0]["sha256"],
        veil::manifest::sha256_hex(&std::fs::read(out.join("sub/t1.jpg")).unwrap())
    );
    let broken = lines
        .iter()
        .find(|l| l["input"].as_str().unwrap().ends_with("broken.jpg"))
        .unwrap();
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("cannot be decoded")
    );
}

#[test]
fn cores_no_image_would_use_run_the_inference_of_the_images_there_are() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("small.png");
    image::RgbImage::from_fn(96, 64, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 90])
    })
    .save(&input)
    .unwrap();
    let cfg = write_config(tmp.path(), &root().join("models"));
    for (workers, summary) in [
        ("3", "with 1 workers of 3 inference threads"),
        ("1", "with 1 workers of 1 inference threads"),
    ] {
        let out = tmp.path().join(format!("out{workers}"));
        let run = anonymise(&cfg, &input, &out, &["-w".as_ref(), workers.as_ref()]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert!(stderr.contains(summary), "-w {workers}: {stderr}");
        assert!(out.join("small.png").is_file());
    }
}

#[test]
fn inputs_whose_copies_would_land_on_the_same_path_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    for cam in ["cam1", "cam2"] {
        std::fs::create_dir_all(tmp.path().join(cam)).unwrap();
        std::fs::write(tmp.path().join(cam).join("0001.jpg"), photo("t1.jpg")).unwrap();
    }
    let out = tmp.path().join("clean");
    let cfg = write_config(tmp.path(), &root().join("models"));
    let run = veil(&cfg)
        .arg("anonymise")
        .arg(tmp.path().join("cam1"))
        .arg(tmp.path().join("cam2"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(stderr.contains("would both be written to"), "{stderr}");
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn models_verify_passes_on_the_installed_models_and_a_tampered_model_stops_veil() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &root().join("models"));
    let verify = veil(&cfg).args(["models", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let manifest = veil::manifest::Manifest::load(&root().join("models")).unwrap();
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" ok ")).count(),
        manifest.models.len(),
        "{stdout}"
    );

    let models = tmp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for f in ["manifest.toml", "centerface-int8.onnx", "platedet.onnx"] {
        std::fs::copy(root().join("models").join(f), models.join(f)).unwrap();
    }
    let mut tampered = std::fs::read(models.join("centerface-int8.onnx")).unwrap();
    tampered.push(0);
    std::fs::write(models.join("centerface-int8.onnx"), tampered).unwrap();
    let cfg = write_config(tmp.path(), &models);
    let run = anonymise(
        &cfg,
        &testdata("astronaut.png"),
        &tmp.path().join("out"),
        &[],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("centerface-int8.onnx")
            && stderr.contains("sha256")
            && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
    assert!(
        !tmp.path().join("out").exists(),
        "nothing is written when a model is refused"
    );
}

#[test]
fn a_missing_runtime_library_is_one_clear_sentence_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("veil.toml");
    let models = root().join("models").display().to_string();
    std::fs::write(
        &cfg,
        format!(
            "[runtime]\nlibrary = \"/nonexistent/libonnxruntime.so\"\nmodels_dir = {models:?}\n"
        ),
    )
    .unwrap();
    let run = anonymise(&cfg, &testdata("camera.png"), &tmp.path().join("out"), &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot load ONNX Runtime from /nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The runtime that scripts/setup.sh installs is the CPU build: asking for CUDA must refuse to
/// start unless the config allows the fallback, and the report must say where inference ran.
#[test]
fn cuda_is_refused_on_a_cpu_runtime_unless_fallback_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &root().join("models"));
    let out = tmp.path().join("out");
    let run = anonymise(
        &cfg,
        &testdata("camera.png"),
        &out,
        &["--device".as_ref(), "cuda".as_ref()],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CUDA was requested") && stderr.contains("cuda_fallback_to_cpu"),
        "{stderr}"
    );
    assert!(!out.exists());

    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("device = \"cuda\"\ncuda_fallback_to_cpu = true\n");
    std::fs::write(&cfg, text).unwrap();
    let report = tmp.path().join("report.jsonl");
    let run = anonymise(
        &cfg,
        &testdata("camera.png"),
        &out,
        &["--report".as_ref(), report.as_os_str()],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&report)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        line["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["device"] == "cpu")
    );
}

#[test]
fn run_and_check_config_name_every_missing_or_wrong_daemon_key_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &root().join("models"));
    for command in ["run", "check-config"] {
        let out = veil(&cfg).arg(command).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        for key in ["ingest:", "audit:", "destinations:"] {
            assert!(err.contains(key), "{command}: {key} missing from {err}");
        }
    }
    let out = veil(&root().join("config/local.toml"))
        .current_dir(root())
        .arg("check-config")
        .env("VEIL__WORKER__HEARTBEAT_S", "900")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("worker.heartbeat_s"), "{err}");
    let ok = veil(&root().join("config/local.toml"))
        .current_dir(root())
        .arg("check-config")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
