//! A moto server of one test's own, for what the shared server must never
//! do: enforce IAM authentication. Auth is global to a moto process and
//! survives `/moto-api/reset` (see `shared/moto-notes.md`), so a test that
//! needs it starts its own server with [`AuthMoto::start`], sets up what it
//! needs unauthenticated, then turns enforcement on with
//! [`AuthMoto::enforce_auth`].
//!
//! The server's lifetime is bounded by the test: it is killed when the
//! [`AuthMoto`] is dropped (also on a panic), and, should the test process
//! die first, by the kernel (`PR_SET_PDEATHSIG`) when the thread that
//! started it ends.
//!
//! [`post`] sends a raw HTTP request, for the set-up calls (IAM's query API,
//! `/moto-api/*`) that this crate has no SDK client for.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::moto::{
    STARTUP_DEADLINE, free_port, moto_server_program, probe, set_parent_death_signal,
};

/// A moto server owned by one test.
#[derive(Debug)]
pub struct AuthMoto {
    child: Child,
    port: u16,
    endpoint: String,
}

impl AuthMoto {
    /// Starts a server (auth not enforced yet) logging to
    /// `log_dir/moto-auth-<port>.log`, and waits until it answers.
    pub fn start(log_dir: &Path) -> anyhow::Result<Self> {
        let program = moto_server_program();
        let port = free_port().context("no free port")?;
        std::fs::create_dir_all(log_dir)?;
        let log_path = log_dir.join(format!("moto-auth-{port}.log"));
        let log = File::create(&log_path)?;
        let mut command = Command::new(&program);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("MOTO_ACCOUNT_ID")
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
        set_parent_death_signal(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("cannot run {}", program.display()))?;
        let mut server = Self {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + STARTUP_DEADLINE;
        while !probe(port) {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "moto_server exited with {status}; see {}",
                    log_path.display()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "moto_server did not answer within {STARTUP_DEADLINE:?}; see {}",
                    log_path.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Base URL, e.g. `http://127.0.0.1:45123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on every request must be signed by a known principal
    /// (`POST /moto-api/reset-auth` with `0`).
    pub fn enforce_auth(&self) -> anyhow::Result<()> {
        let (status, body) = post(self.port, "/moto-api/reset-auth", &[], "0")?;
        if status != 200 {
            bail!("reset-auth answered {status}: {body}");
        }
        Ok(())
    }
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST path` with `headers` and `body` to moto on `port`; the status and
/// the body of the answer.
pub fn post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {answer:.80}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
