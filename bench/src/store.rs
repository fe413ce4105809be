//! The embedded-store choice, measured: SQLite (WAL, synchronous=FULL) against
//! redb (durability Immediate), both committing durably, with one write per
//! commit and with group commits of 64, on the same disk in the same run.
//! Mosaic's store uses SQLite; this is the figure behind that choice.
//!
//! `cargo run --release -p mosaic-bench --bin store-bench -- --dir target`

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Writes per measurement.
    #[arg(long, default_value_t = 5000)]
    writes: usize,
    /// Where the databases live (the same disk for both).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("kv");

fn sqlite(dir: &std::path::Path, writes: usize, batch: usize, value: &[u8]) -> Result<f64> {
    let conn = rusqlite::Connection::open(dir.join(format!("s{batch}.db")))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value BLOB NOT NULL)",
    )?;
    let mut conn = conn;
    let t = Instant::now();
    let mut id = 0u64;
    while (id as usize) < writes {
        let tx = conn.transaction()?;
        {
            let mut st =
                tx.prepare_cached("INSERT INTO kv (id, name, value) VALUES (?1, ?2, ?3)")?;
            for _ in 0..batch {
                id += 1;
                st.execute(rusqlite::params![
                    id as i64,
                    format!("/mosaic.dev/tasks/default/t{id}"),
                    value
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(id as f64 / t.elapsed().as_secs_f64())
}

fn redb(dir: &std::path::Path, writes: usize, batch: usize, value: &[u8]) -> Result<f64> {
    let db = redb::Database::create(dir.join(format!("r{batch}.redb")))?;
    let t = Instant::now();
    let mut id = 0u64;
    while (id as usize) < writes {
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(TABLE)?;
            for _ in 0..batch {
                id += 1;
                table.insert(id, value)?;
            }
        }
        tx.commit()?;
    }
    Ok(id as f64 / t.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir_in(args.dir.unwrap_or_else(std::env::temp_dir))?;
    let value = vec![b'x'; 300];
    println!(
        "{:<28} {:>14} {:>14}",
        "durable writes/s", "one per commit", "64 per commit"
    );
    let s = (
        sqlite(tmp.path(), args.writes / 5, 1, &value)?,
        sqlite(tmp.path(), args.writes * 10, 64, &value)?,
    );
    println!(
        "{:<28} {:>14.0} {:>14.0}",
        "SQLite WAL synchronous=FULL", s.0, s.1
    );
    let r = (
        redb(tmp.path(), args.writes / 5, 1, &value)?,
        redb(tmp.path(), args.writes * 10, 64, &value)?,
    );
    println!(
        "{:<28} {:>14.0} {:>14.0}",
        "redb Durability::Immediate", r.0, r.1
    );
    Ok(())
}
