//! One moto server per test process, started lazily and shared by every test.
//!
//! The first call to [`shared`] starts `moto_server` on a free loopback port
//! and waits until it answers; later calls (from any thread) get the same
//! server. Tests isolate from each other by working in their own random
//! account ids (see [`crate::random_account_id`]), never by resetting the
//! server.
//!
//! The server's lifetime is tied to the test process: the child is spawned
//! with `PR_SET_PDEATHSIG = SIGKILL` from a dedicated thread that never exits,
//! so the kernel kills moto as soon as the test process goes away, however it
//! ends (normal exit, panic, Ctrl-C, `SIGKILL`).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable that overrides the path of the `moto_server` program.
pub const MOTO_SERVER_ENV: &str = "MOTO_SERVER";

/// How long to wait for a freshly started moto to answer.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// How many times to retry with a new port when moto exits during start-up
/// (e.g. because another process grabbed the port we picked).
const START_ATTEMPTS: u32 = 3;

static SERVER: OnceLock<Result<MotoServer, String>> = OnceLock::new();

/// A running moto server, shared by all tests of one process.
#[derive(Debug)]
pub struct MotoServer {
    endpoint: String,
    port: u16,
    pid: u32,
    log_path: PathBuf,
    startup: Duration,
}

impl MotoServer {
    /// Base URL of the server, e.g. `http://127.0.0.1:45123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the `moto_server` process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// File that receives moto's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// How long the server took from spawn to its first good answer.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }
}

/// Returns the moto server of this test process, starting it on first use.
///
/// `log_dir` is where moto's output goes (`moto-<test pid>.log`); integration
/// tests should pass `env!("CARGO_TARGET_TMPDIR")`. Only the first call's
/// `log_dir` is used.
///
/// This blocks the calling thread for the start-up (about a second; at most
/// [`STARTUP_DEADLINE`]). A start-up failure is remembered, so every test of
/// the process fails quickly with the same message.
///
/// # Panics
///
/// If moto cannot be started; the message says why and where its log is.
pub fn shared(log_dir: &Path) -> &'static MotoServer {
    match SERVER.get_or_init(|| start(log_dir)) {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

/// Path of the `moto_server` program: `$MOTO_SERVER`, or the one `./dev setup`
/// installs into the workspace's `.build/venv`.
pub fn moto_server_program() -> PathBuf {
    match std::env::var_os(MOTO_SERVER_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("integration-tests lives inside the workspace")
            .join(".build/venv/bin/moto_server"),
    }
}

fn start(log_dir: &Path) -> Result<MotoServer, String> {
    let program = moto_server_program();
    if !program.is_file() {
        return Err(format!(
            "moto server not found at {}: run `./dev setup` in the workspace root \
             (or set {MOTO_SERVER_ENV} to a moto_server program)",
            program.display()
        ));
    }
    fs::create_dir_all(log_dir)
        .map_err(|e| format!("cannot create moto log dir {}: {e}", log_dir.display()))?;
    let log_path = log_dir.join(format!("moto-{}.log", std::process::id()));

    let mut failures = Vec::new();
    for attempt in 1..=START_ATTEMPTS {
        match start_once(&program, &log_path) {
            Ok(server) => return Ok(server),
            Err(StartError::Fatal(message)) => return Err(message),
            Err(StartError::Exited(message)) => {
                failures.push(format!("attempt {attempt}: {message}"));
            }
        }
    }
    Err(format!(
        "moto server failed to start {START_ATTEMPTS} times:\n  {}\nlog: {}",
        failures.join("\n  "),
        log_path.display()
    ))
}

enum StartError {
    /// Give up: retrying would not help.
    Fatal(String),
    /// moto exited during start-up; a new port may help.
    Exited(String),
}

fn start_once(program: &Path, log_path: &Path) -> Result<MotoServer, StartError> {
    let port = free_port().map_err(|e| StartError::Fatal(format!("no free port: {e}")))?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| StartError::Fatal(format!("cannot open {}: {e}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(|e| StartError::Fatal(format!("cannot clone log file handle: {e}")))?;

    let mut command = Command::new(program);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .env("PYTHONUNBUFFERED", "1")
        // Either would break per-account isolation or auth assumptions.
        .env_remove("MOTO_ACCOUNT_ID")
        .env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
    set_parent_death_signal(&mut command);

    let started = Instant::now();
    let exit_status: Arc<Mutex<Option<ExitStatus>>> = Arc::default();
    let pid = spawn_on_keeper_thread(command, Arc::clone(&exit_status))
        .map_err(|e| StartError::Fatal(format!("cannot run {}: {e}", program.display())))?;

    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = started + STARTUP_DEADLINE;
    loop {
        if let Some(status) = *exit_status.lock().expect("exit status lock") {
            return Err(StartError::Exited(format!(
                "moto_server (pid {pid}, port {port}) exited with {status} during start-up; \
                 see {}",
                log_path.display()
            )));
        }
        if probe(port) {
            return Ok(MotoServer {
                endpoint,
                port,
                pid,
                log_path: log_path.to_path_buf(),
                startup: started.elapsed(),
            });
        }
        if Instant::now() >= deadline {
            // The process is left running; PDEATHSIG ends it with this process.
            return Err(StartError::Fatal(format!(
                "moto_server (pid {pid}) did not answer on {endpoint}/moto-api/ within {:?}; \
                 see {}",
                STARTUP_DEADLINE,
                log_path.display()
            )));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Makes the kernel send `SIGKILL` to the child when the thread that spawned
/// it exits (which, for our never-exiting keeper thread, means when the test
/// process exits).
pub(crate) fn set_parent_death_signal(command: &mut Command) {
    let parent_pid = std::process::id();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec. It only makes
    // two async-signal-safe syscalls (prctl, getppid), allocates nothing and
    // touches no locks or shared state.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then we were
            // re-parented already and no signal would ever come.
            if libc::getppid() as u32 != parent_pid {
                return Err(std::io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
}

/// Spawns `command` from a new thread that then waits for the child, records
/// its exit status and parks for ever. The thread must outlive the child:
/// `PR_SET_PDEATHSIG` fires when the spawning *thread* exits.
fn spawn_on_keeper_thread(
    mut command: Command,
    exit_status: Arc<Mutex<Option<ExitStatus>>>,
) -> std::io::Result<u32> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("moto-server-keeper".into())
        .spawn(move || {
            match command.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id()));
                    if let Ok(status) = child.wait() {
                        *exit_status.lock().expect("exit status lock") = Some(status);
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
            loop {
                thread::park();
            }
        })?;
    rx.recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("moto keeper thread died")))
}

pub(crate) fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// True when `GET /moto-api/` on the port answers `200`.
pub(crate) fn probe(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(5));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 32];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let head = String::from_utf8_lossy(&head[..len]);
    head.starts_with("HTTP/1.") && head.get(8..13) == Some(" 200 ")
}
