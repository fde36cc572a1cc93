//! `veil anonymise IN... --out DIR`: anonymise files and folders, in parallel, with a report.
//!
//! Folders are walked recursively and their relative paths kept under DIR. Each worker thread
//! owns a pipeline (its own ONNX Runtime sessions). An image that fails, veil crashing on it
//! included, is reported and skipped; the others are still processed, and the exit code says
//! that something failed. Outputs are written to a fresh temporary file (created exclusively,
//! under a random name, so it can neither be shared by two workers nor follow a planted symlink)
//! and renamed, so a crash never leaves a half-written image. Two inputs whose copies would land
//! at the same path are refused before any work starts, so that no copy silently replaces
//! another.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use veil::codec::Format;
use veil::config::{Config, ConfigError};
use veil::detect::Class;
use veil::pipeline::Pipeline;
use veil::report::Report;
use veil::runtime::Device;

#[derive(clap::Args)]
pub struct Args {
    /// Image files and folders (walked recursively for .jpg, .jpeg, .png, .tif, .tiff and .webp
    /// files).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder; relative paths under each input folder are kept.
    #[arg(long, short)]
    out: PathBuf,
    /// Write one JSON line per image (detections, models, outputs, timings) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Images processed in parallel (default: one per CPU core).
    #[arg(long, short)]
    workers: Option<usize>,
    /// Output format (default: the input's format).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// JPEG quality, 1-100.
    #[arg(long)]
    jpeg_quality: Option<u8>,
    /// Where inference runs.
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Jpeg,
    Png,
    Tiff,
    Webp,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

/// One image to process: where it is and where its copy goes (without extension change yet).
struct Job {
    input: PathBuf,
    relative: PathBuf,
}

/// One line of the report file.
#[derive(Serialize)]
struct Line<'a> {
    input: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    report: Option<&'a Report>,
}

pub fn run(mut config: Config, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(f) = args.format {
        config.output.format = Some(match f {
            FormatArg::Jpeg => Format::Jpeg,
            FormatArg::Png => Format::Png,
            FormatArg::Tiff => Format::Tiff,
            FormatArg::Webp => Format::Webp,
        });
    }
    if let Some(q) = args.jpeg_quality {
        config.output.jpeg_quality = q;
    }
    if let Some(d) = args.device {
        config.runtime.device = match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
        };
    }
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors).into());
    }
    let jobs = collect(&args.inputs).map_err(anyhow::Error::msg)?;
    refuse_collisions(&jobs, &args.out, config.output.format).map_err(anyhow::Error::msg)?;
    let claimed = Mutex::new(HashSet::new());
    let parallel = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let workers = parallel.min(jobs.len().max(1));
    // With fewer images than workers, the cores no image would use run each image's
    // inference instead: a 1536² portrait alone on two cores took 8.4 s instead of 14.0 s.
    config.runtime.intra_threads *= parallel / workers;
    let threads = config.runtime.intra_threads;
    let engine = config.engine()?;
    let mut pipelines = Vec::with_capacity(workers);
    for _ in 0..workers {
        pipelines.push(engine.pipeline()?);
    }
    let mut report = match &args.report {
        Some(p) => {
            Some(std::io::BufWriter::new(create(p).with_context(|| {
                format!("cannot create the report {}", p.display())
            })?))
        }
        None => None,
    };

    let bar = ProgressBar::new(jobs.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta} {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let (mut ok, mut failed, mut faces, mut plates) = (0usize, 0usize, 0usize, 0usize);
    std::thread::scope(|s| {
        for pipeline in pipelines {
            let tx = tx.clone();
            let (jobs, next, rendition) = (&jobs, &next, &config.output);
            let target = Target {
                out: &args.out,
                claimed: &claimed,
            };
            let engine = &engine;
            s.spawn(move || {
                let mut pipeline = Some(pipeline);
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = isolated(
                        &mut pipeline,
                        || engine.pipeline().map_err(|e| e.to_string()),
                        |p| process(p, job, &target, rendition),
                    );
                    if tx.send((job, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (job, result) in rx {
            let line = match &result {
                Ok((output, r)) => {
                    ok += 1;
                    faces += r.count(Class::Face);
                    plates += r.count(Class::Plate);
                    Line {
                        input: &job.input,
                        output: Some(output),
                        error: None,
                        report: Some(r),
                    }
                }
                Err(e) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("veil: {}: {e}", job.input.display()));
                    Line {
                        input: &job.input,
                        output: None,
                        error: Some(e),
                        report: None,
                    }
                }
            };
            if let Some(w) = report.as_mut() {
                let written = serde_json::to_writer(&mut *w, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|_| w.write_all(b"\n"));
                if let Err(e) = written {
                    bar.suspend(|| eprintln!("veil: cannot write the report: {e}"));
                }
            }
            bar.inc(1);
        }
    });
    bar.finish_and_clear();
    if let Some(mut w) = report {
        w.flush().context("cannot write the report")?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "veil: anonymised {ok} of {} images ({failed} failed): {faces} faces, {plates} plates redacted; \
         {secs:.1} s, {:.2} images/s with {workers} workers of {threads} inference threads",
        jobs.len(),
        ok as f64 / secs.max(1e-9)
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where copies go: the output folder, and the paths written so far in this run.
struct Target<'a> {
    out: &'a Path,
    claimed: &'a Mutex<HashSet<PathBuf>>,
}

/// Runs `work` on the worker's pipeline in `slot`, first building one with `rebuild` where the
/// last one crashed. A panic is a bug in veil, not a fault of the image, but it must not stop
/// the run: the image fails with one sentence (the panic hook has logged where it happened), the
/// pipeline it left in an unknown state is dropped, and the next image gets a fresh one.
fn isolated<P, T>(
    slot: &mut Option<P>,
    rebuild: impl FnOnce() -> Result<P, String>,
    work: impl FnOnce(&mut P) -> Result<T, String>,
) -> Result<T, String> {
    let pipeline = match slot {
        Some(p) => p,
        None => slot.insert(
            rebuild().map_err(|e| format!("cannot rebuild the pipeline after a crash: {e}"))?,
        ),
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(pipeline))) {
        Ok(result) => result,
        Err(_) => {
            *slot = None;
            Err("veil crashed on this image (a bug: see the log above); no copy was written".into())
        }
    }
}

/// Anonymises one file and writes its copy; returns the output path and the report.
fn process(
    pipeline: &mut Pipeline,
    job: &Job,
    target: &Target,
    rendition: &veil::rendition::Rendition,
) -> Result<(PathBuf, Report), String> {
    let bytes = std::fs::read(&job.input).map_err(|e| format!("cannot read: {e}"))?;
    let result = pipeline
        .anonymise(&bytes, std::slice::from_ref(rendition))
        .map_err(|e| e.to_string())?;
    let output = &result.outputs[0];
    let path = output_path(target.out, &job.relative, output.info.format);
    if same_file(&path, &job.input) {
        return Err(format!(
            "refusing to overwrite the input with its copy at {}",
            path.display()
        ));
    }
    // A file whose content is not what its extension says gets the extension of its format,
    // which the plan made before decoding could not foresee: never let it replace another copy.
    if !target.claimed.lock().expect("lock").insert(path.clone()) {
        return Err(format!(
            "its copy would replace another input's copy at {}",
            path.display()
        ));
    }
    write_atomically(&path, &output.bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((path, result.report))
}

/// `out/relative`, with the extension changed when the output format differs from it.
fn output_path(out: &Path, relative: &Path, format: Format) -> PathBuf {
    let path = out.join(relative);
    match extension_format(&path) {
        Some(f) if f == format => path,
        _ => path.with_extension(format.extension()),
    }
}

fn extension_format(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => Some(Format::Jpeg),
        "png" => Some(Format::Png),
        "tif" | "tiff" => Some(Format::Tiff),
        "webp" => Some(Format::Webp),
        _ => None,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Creates a file, and its folder if needed.
fn create(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)
}

/// Writes `bytes` to a new temporary file beside `path` and renames it over `path`. The
/// temporary file is created exclusively under a random name (never shared, never a symlink
/// followed) and removed if anything fails; the rename replaces a link at `path`, not its target.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".veil-")
        .suffix(".partial")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

/// The output path each job will have when the format is known before decoding: the forced
/// format, or the one its extension names.
fn planned_output(out: &Path, job: &Job, forced: Option<Format>) -> Option<PathBuf> {
    let format = forced.or_else(|| extension_format(&job.input))?;
    Some(output_path(out, &job.relative, format))
}

/// Refuses a run in which two inputs would be written to the same output path (two input
/// folders with the same file names, or `x.jpg` and `x.png` with `--format jpeg`).
fn refuse_collisions(jobs: &[Job], out: &Path, forced: Option<Format>) -> Result<(), String> {
    let mut seen: HashMap<PathBuf, &Path> = HashMap::new();
    for job in jobs {
        let Some(path) = planned_output(out, job, forced) else {
            continue;
        };
        if let Some(first) = seen.insert(path.clone(), &job.input) {
            return Err(format!(
                "{} and {} would both be written to {}: give them separate --out folders, or \
                 pass the folder that holds both",
                first.display(),
                job.input.display(),
                path.display()
            ));
        }
    }
    Ok(())
}

/// Expands the inputs: files as given, folders walked for image files, in a stable order.
fn collect(inputs: &[PathBuf]) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<Job> = walkdir::WalkDir::new(input)
                .sort_by_file_name()
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file() && extension_format(e.path()).is_some())
                .map(|e| Job {
                    relative: e
                        .path()
                        .strip_prefix(input)
                        .expect("walked under input")
                        .to_path_buf(),
                    input: e.into_path(),
                })
                .collect();
            jobs.append(&mut found);
        } else if input.is_file() {
            let name = input
                .file_name()
                .ok_or_else(|| format!("{} has no file name", input.display()))?;
            jobs.push(Job {
                input: input.clone(),
                relative: PathBuf::from(name),
            });
        } else {
            return Err(format!("input {} does not exist", input.display()));
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(input: &str, relative: &str) -> Job {
        Job {
            input: PathBuf::from(input),
            relative: PathBuf::from(relative),
        }
    }

    #[test]
    fn a_crash_fails_its_image_alone_and_the_next_image_gets_a_fresh_pipeline() {
        let mut slot = Some(1);
        let rebuilt = || Ok(2);
        assert_eq!(isolated(&mut slot, rebuilt, |p| Ok(*p)), Ok(1));
        let crash = isolated(&mut slot, rebuilt, |_| -> Result<u32, String> {
            panic!("bug")
        });
        assert!(crash.unwrap_err().contains("crashed on this image"));
        assert_eq!(slot, None, "the crashed pipeline is dropped");
        assert_eq!(isolated(&mut slot, rebuilt, |p| Ok(*p)), Ok(2));
        assert_eq!(slot, Some(2));
        slot = None;
        let broken = isolated(&mut slot, || Err("no models".into()), |p: &mut u32| Ok(*p));
        assert!(broken.unwrap_err().contains("no models"));
    }

    #[test]
    fn inputs_whose_copies_would_share_a_path_are_refused() {
        let out = Path::new("/o");
        let folders = [
            job("cam1/0001.jpg", "0001.jpg"),
            job("cam2/0001.jpg", "0001.jpg"),
        ];
        let err = refuse_collisions(&folders, out, None).unwrap_err();
        assert!(
            err.contains("cam1/0001.jpg") && err.contains("cam2/0001.jpg"),
            "{err}"
        );
        assert!(err.contains("/o/0001.jpg"), "{err}");
        let formats = [job("x.jpg", "x.jpg"), job("x.png", "x.png")];
        assert!(refuse_collisions(&formats, out, None).is_ok());
        assert!(refuse_collisions(&formats, out, Some(Format::Jpeg)).is_err());
        let tree = [job("a/1.jpg", "a/1.jpg"), job("b/1.jpg", "b/1.jpg")];
        assert!(refuse_collisions(&tree, out, Some(Format::Png)).is_ok());
    }

    #[test]
    fn copies_are_written_through_a_fresh_file_never_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "keep me").unwrap();
        let path = dir.path().join("x.jpg");
        // The temporary name of earlier versions, and the output itself, as links.
        std::os::unix::fs::symlink(&victim, dir.path().join("x.jpg.veil-partial")).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomically(&path, b"copy").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(std::fs::read(&path).unwrap(), b"copy");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn output_paths_keep_relative_folders_and_fix_the_extension() {
        let out = Path::new("/o");
        assert_eq!(
            output_path(out, Path::new("a/b.JPG"), Format::Jpeg),
            Path::new("/o/a/b.JPG")
        );
        assert_eq!(
            output_path(out, Path::new("a/b.jpg"), Format::Png),
            Path::new("/o/a/b.png")
        );
        assert_eq!(
            output_path(out, Path::new("c.bin"), Format::Webp),
            Path::new("/o/c.webp")
        );
        assert_eq!(
            output_path(out, Path::new("scan.tiff"), Format::Tiff),
            Path::new("/o/scan.tiff")
        );
        assert_eq!(
            output_path(out, Path::new("scan.tif"), Format::Jpeg),
            Path::new("/o/scan.jpg")
        );
    }
}
