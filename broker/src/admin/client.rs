//! `warren ctl`: sends a command line to the running broker's admin socket and prints the
//! answer the way `rabbitmqctl` does (a progress line, then tab-separated rows with a header, or
//! `--formatter json`; `-q` drops the progress line, `-s` the header too; errors on stderr after
//! `Error:`, with `rabbitmqctl`'s exit codes).

use super::Answer;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Runs `warren ctl ARGS` against the broker whose data directory is `data_dir`; returns the
/// process exit code.
pub(crate) fn run(data_dir: &Path, args: Vec<String>) -> i32 {
    let mut quiet = false;
    let mut silent = false;
    let mut json_out = false;
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-q" | "--quiet" => quiet = true,
            "-s" | "--silent" => silent = true,
            "--formatter" => json_out = it.next().as_deref() == Some("json"),
            "--formatter=json" => json_out = true,
            "--no-table-headers" => silent = true,
            _ => rest.push(a),
        }
    }
    // The broker reads (writes) the file: give it a path that does not depend on our directory.
    if matches!(
        rest.first().map(String::as_str),
        Some("import_definitions" | "export_definitions")
    ) {
        if let Some(p) = rest.get_mut(1).filter(|p| p.as_str() != "-") {
            if let Ok(abs) = std::path::absolute(&*p) {
                *p = abs.display().to_string();
            }
        }
    }
    let answer = match ask(data_dir, rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "Error: unable to reach the broker's admin socket {}: {e}\nIs warren running with --data-dir {}?",
                super::socket::path(data_dir).display(),
                data_dir.display()
            );
            return 69;
        }
    };
    print(&answer, quiet || silent || json_out, silent, json_out);
    answer.exit
}

fn ask(data_dir: &Path, args: Vec<String>) -> std::io::Result<Answer> {
    let mut s = UnixStream::connect(super::socket::path(data_dir))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = serde_json::to_vec(&json!({ "args": args }))?;
    req.push(b'\n');
    s.write_all(&req)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(cell).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

fn print(a: &Answer, no_info: bool, no_header: bool, json_out: bool) {
    if !no_info && !a.info.is_empty() {
        println!("{}", a.info);
    }
    if let Some(e) = &a.error {
        eprintln!("Error:\n{e}");
        return;
    }
    if json_out {
        if a.columns.is_empty() {
            if let Some(m) = &a.message {
                println!("{}", json!({ "message": m }));
            }
            return;
        }
        // rabbitmqctl's JSON listing: one object per line, leading commas, keys in column
        // order (serde_json's map would sort them).
        println!("[");
        for (i, row) in a.rows.iter().enumerate() {
            let fields: Vec<String> = a
                .columns
                .iter()
                .zip(row)
                .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
                .collect();
            let sep = if i == 0 { "" } else { "," };
            println!("{sep}{{{}}}", fields.join(","));
        }
        println!("]");
        return;
    }
    if !a.columns.is_empty() {
        if !no_header {
            println!("{}", a.columns.join("\t"));
        }
        for row in &a.rows {
            let cells: Vec<String> = row.iter().map(cell).collect();
            println!("{}", cells.join("\t"));
        }
    }
    if let Some(m) = &a.message {
        println!("{m}");
    }
}
