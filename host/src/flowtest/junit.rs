//! JUnit XML, the report CI systems read: a `testsuite` per test file, a
//! `testcase` per case, a `failure` holding its differences.

use std::fmt::Write;
use std::time::Duration;

/// One case as JUnit reports it.
#[derive(Debug)]
pub struct CaseReport<'a> {
    /// The case's name.
    pub name: &'a str,
    /// Its differences, one line each; empty when it passed.
    pub failures: Vec<String>,
    /// The wall time it took.
    pub time: Duration,
}

/// One test file as JUnit reports it.
#[derive(Debug)]
pub struct FileReport<'a> {
    /// The test file, as given.
    pub file: String,
    /// The flow it tests.
    pub flow: &'a str,
    /// Its cases that ran.
    pub cases: Vec<CaseReport<'a>>,
}

/// The JUnit XML document of `files`.
pub fn junit_xml(files: &[FileReport<'_>]) -> String {
    let count = |f: &FileReport<'_>| f.cases.len();
    let failed = |f: &FileReport<'_>| f.cases.iter().filter(|c| !c.failures.is_empty()).count();
    let time = |f: &FileReport<'_>| f.cases.iter().map(|c| c.time.as_secs_f64()).sum::<f64>();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"flowhost test\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
        files.iter().map(count).sum::<usize>(),
        files.iter().map(failed).sum::<usize>(),
        files.iter().map(time).sum::<f64>(),
    );
    for f in files {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
            escape(&f.file),
            count(f),
            failed(f),
            time(f)
        );
        for c in &f.cases {
            let _ = write!(
                xml,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                escape(c.name),
                escape(f.flow),
                c.time.as_secs_f64()
            );
            if c.failures.is_empty() {
                xml.push_str("/>\n");
                continue;
            }
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{} difference(s)\">{}</failure>\n    </testcase>",
                c.failures.len(),
                escape(&c.failures.join("\n"))
            );
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Text safe in XML content and attributes. Characters XML 1.0 cannot hold
/// at all (most control characters) become U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
