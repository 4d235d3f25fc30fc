//! The fleet under test is `bin/fleet` itself (so the script users run is what the
//! tests exercise): a private primary, a streaming replica, three instances of the
//! server binary under test and HAProxy, in a directory of its own under `tmp/`.
//! [`Fleet`] starts it, reads `fleet.env`, and stops everything when dropped. Fleets
//! are started one at a time ([`Fleet::start`] holds a lock, and a file lock on
//! `tmp/fleet-tests/.lock`), so neither the tests of this binary nor the two storage
//! modes' passes running side by side (`rake test`) ever run two fleets at once on a
//! 2-core machine. Used by the fleet tests
//! (`tests/fleet/`) and the fleet benchmark (`benches/fleet_throughput.rs`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::database::workspace_root;
use crate::metrics;
use crate::proc_stats::local_tcp_ports;
use crate::process::{binary, free_port as try_free_port};

pub const ADMIN_KEY: &str = "fleet-test-admin";

static ONE_FLEET_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Fleet {
    child: Child,
    pub env: HashMap<String, String>,
    pub dir: PathBuf,
    _turn: MutexGuard<'static, ()>,
    /// Held (locked) while this fleet runs: the other test processes' fleets wait.
    _machine_turn: std::fs::File,
}

fn repository() -> PathBuf {
    workspace_root()
}

pub fn free_port() -> u16 {
    try_free_port().expect("a free port")
}

impl Fleet {
    /// `bin/fleet` with `keys` as ingest keys and `extra` settings for every instance.
    pub fn start(name: &str, keys: &[&str], extra: &[(&str, &str)]) -> Fleet {
        let turn = ONE_FLEET_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Longer than a Unix socket path may be (107 bytes), as under a deeply nested
        // checkout: every fleet test also checks that HAProxy's socket then goes in a
        // short directory (bin/socket-dir; the clusters open no Unix socket).
        let base = repository().join("tmp/fleet-tests");
        std::fs::create_dir_all(&base).expect("tmp/fleet-tests");
        let machine_turn = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(base.join(".lock"))
            .expect("tmp/fleet-tests/.lock");
        machine_turn.lock().expect("lock tmp/fleet-tests/.lock");
        let mut leaf = format!("{name}-{}", std::process::id());
        while base.join(&leaf).as_os_str().len() <= 110 {
            leaf.push_str("-long-checkout-path");
        }
        let dir = base.join(leaf);
        let _ = std::fs::remove_dir_all(&dir);
        let mut command = Command::new(repository().join("bin/fleet"));
        command
            .env("FLEET_DIR", &dir)
            .env("FLEET_PORT", free_port().to_string())
            .env("LOG_INGESTION_SERVER_BIN", binary())
            .env("LOG_INGESTION_API_KEYS", keys.join(","))
            .env("LOG_INGESTION_ADMIN_API_KEYS", ADMIN_KEY)
            .env("LOG_INGESTION_SHUTDOWN_DEADLINE", "5s")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("LOG_INGESTION_RATE_LIMIT_RPS")
            .env_remove("LOG_INGESTION_RATE_LIMIT_BURST");
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bin/fleet starts");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "fleet ready" {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut fleet = Fleet {
            child,
            env: HashMap::new(),
            dir: dir.clone(),
            _turn: turn,
            _machine_turn: machine_turn,
        };
        if ready_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!(
                "bin/fleet did not get ready within 120 s (logs in {})",
                dir.display()
            );
        }
        let text = std::fs::read_to_string(dir.join("fleet.env")).expect("fleet.env");
        fleet.env = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let socket = fleet.var("FLEET_HAPROXY_SOCKET");
        assert!(
            socket.len() <= 97,
            "HAProxy's socket path is {} bytes, over the 97 HAProxy accepts: {socket}",
            socket.len()
        );
        fleet
    }

    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from fleet.env"))
    }

    /// HAProxy's URL.
    pub fn url(&self) -> String {
        self.var("FLEET_URL").to_owned()
    }

    /// Instance `n`'s own URL (1-based), bypassing HAProxy.
    pub fn instance_url(&self, n: usize) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.var(&format!("FLEET_INSTANCE_{n}_PORT"))
        )
    }

    /// `kill -9` instance `n`.
    pub fn kill_instance(&self, n: usize) {
        let pid = self.var(&format!("FLEET_INSTANCE_{n}_PID"));
        let status = Command::new("kill").args(["-9", pid]).status().unwrap();
        assert!(status.success(), "kill -9 {pid}");
    }

    /// The instance (1-based) HAProxy connected process `pid`'s open connection to, read
    /// from HAProxy's `show sess` (matching the process's local ports to sessions' `src`).
    pub fn instance_serving(&self, pid: u32) -> Option<usize> {
        let ports = local_tcp_ports(pid);
        let mut socket =
            std::os::unix::net::UnixStream::connect(self.var("FLEET_HAPROXY_SOCKET")).ok()?;
        use std::io::{Read, Write};
        socket.write_all(b"show sess\n").ok()?;
        let mut sessions = String::new();
        socket.read_to_string(&mut sessions).ok()?;
        sessions.lines().find_map(|line| {
            let src_port = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("src=127.0.0.1:"))?
                .parse::<u16>()
                .ok()?;
            if !ports.contains(&src_port) {
                return None;
            }
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("srv=fleet-"))?
                .parse()
                .ok()
        })
    }

    /// Stops the separate rate-limit store (`FLEET_SEPARATE_RATE_LIMIT_STORE=1`).
    pub fn stop_rate_limit_store(&self) {
        let status = Command::new(repository().join("bin/postgres-dev"))
            .arg("stop")
            .arg(self.dir.join("store"))
            .status()
            .unwrap();
        assert!(status.success(), "bin/postgres-dev stop store");
    }

    pub async fn primary(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.var("FLEET_PRIMARY_URL"))
            .await
            .expect("primary")
    }

    pub async fn replica(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.var("FLEET_REPLICA_URL"))
            .await
            .expect("replica")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Reads one number from an instance's `/metrics` (0 when absent or unreachable).
pub async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    metrics::scrape_sample(http, base, name)
        .await
        .unwrap_or(0.0)
}
