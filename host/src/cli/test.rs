//! `flowhost test`: run the cases of test files and report like a test
//! runner: a line per case, the differences of a failed one by JSON path,
//! `N passed, M failed`, and JUnit XML on request.

use std::path::{Path, PathBuf};

use flowhost::Host;
use flowhost::flow::FlowError;
use flowhost::flowtest::{
    CaseReport, FileReport, Suite, TestFile, find_test_files, junit_xml, load_test_file,
};

use super::Failure;

/// Arguments of `flowhost test`.
#[derive(clap::Args)]
pub(crate) struct TestArgs {
    /// Test files, or folders searched (recursively) for `*.test.yaml`,
    /// `*.test.yml` and `*.test.json`.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The plugins folder for every file; without it, each file's `plugins`.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Run only the cases whose name contains TEXT (ignoring case).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

pub(crate) async fn run(args: TestArgs) -> Result<(), Failure> {
    let files = read_files(&args.paths).await?;
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;
    let mut suites = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match Suite::prepare(&host, file, args.plugins.as_deref()).await {
            Ok(suite) => suites.push(suite),
            Err(lines) => problems.extend(lines),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::usage(problems.join("\n")));
    }
    let wanted = |name: &str| match &args.filter {
        Some(f) => name.to_lowercase().contains(&f.to_lowercase()),
        None => true,
    };
    let selected: usize = suites
        .iter()
        .map(|s| s.file.cases.iter().filter(|c| wanted(&c.name)).count())
        .sum();
    if selected == 0 {
        let why = match &args.filter {
            Some(f) => format!("--filter {f:?}: no case matches"),
            None => "the test files hold no case".to_string(),
        };
        return Err(Failure::usage(why));
    }

    let (mut passed, mut failed) = (0, 0);
    let mut reports = Vec::new();
    for suite in &suites {
        if !suite.file.cases.iter().any(|c| wanted(&c.name)) {
            continue;
        }
        println!(
            "{}: flow {}",
            suite.file.path.display(),
            suite.flow().name()
        );
        let mut cases = Vec::new();
        for case in suite.file.cases.iter().filter(|c| wanted(&c.name)) {
            let outcome = suite.run(&host, case).await;
            let ms = outcome.wall.as_secs_f64() * 1e3;
            let mut failures: Vec<String> =
                outcome.mismatches.iter().map(ToString::to_string).collect();
            if outcome.passed() {
                passed += 1;
                println!("  ✓ {} ({ms:.0}ms)", case.name);
            } else {
                failed += 1;
                println!("  ✗ {} ({ms:.0}ms)", case.name);
                let error = outcome.record.as_ref().and_then(|r| r.error.as_ref());
                if let Some(e) = error {
                    failures.push(format!("the run: {e}"));
                }
                for line in &failures {
                    println!("      {line}");
                }
            }
            cases.push(CaseReport {
                name: &case.name,
                failures,
                time: outcome.wall,
            });
        }
        reports.push(FileReport {
            file: suite.file.path.display().to_string(),
            flow: suite.flow().name(),
            cases,
        });
    }
    println!("{passed} passed, {failed} failed");
    if let Some(path) = &args.junit {
        write_junit(path, &junit_xml(&reports)).await?;
    }
    if failed > 0 {
        return Err(Failure::failed(format!("{failed} test case(s) failed")));
    }
    Ok(())
}

/// Every test file under `paths`, parsed; every problem of every file is
/// printed before the command gives up (exit 2).
async fn read_files(paths: &[PathBuf]) -> Result<Vec<TestFile>, Failure> {
    let mut found = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(Failure::usage(format!(
                "{}: no such file or folder",
                path.display()
            )));
        }
        let at = path.clone();
        let files = tokio::task::spawn_blocking(move || find_test_files(&at))
            .await
            .map_err(Failure::failed)?
            .map_err(Failure::usage)?;
        if files.is_empty() {
            return Err(Failure::usage(format!(
                "{}: no test files (*.test.yaml) there",
                path.display()
            )));
        }
        found.extend(files);
    }
    let mut parsed = Vec::new();
    let mut errors: Vec<FlowError> = Vec::new();
    for path in found {
        match load_test_file(&path).await {
            Ok(file) => parsed.push(file),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        return Ok(parsed);
    }
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Err(Failure::usage(format!(
        "{} error(s) in the test files:\n{}",
        errors.len(),
        lines.join("\n")
    )))
}

async fn write_junit(path: &Path, xml: &str) -> Result<(), Failure> {
    tokio::fs::write(path, xml).await.map_err(|e| {
        Failure::usage(format!(
            "--junit {}: cannot write the report there: {e}",
            path.display()
        ))
    })
}
