//! `apple-fleet`: a fleet of simulated Apple devices (`latchkey_tests::apple`:
//! real SCEP enrollment, `Mdm-Signature`d check-ins, Apple's command state
//! machine) against a server on SQLite, in phases:
//!
//! 1. SCEP: each device gets its identity with its profile's challenge;
//! 2. check-in: every device's Authenticate, then every TokenUpdate (the
//!    server's CPU per message), then the first inventory the TokenUpdate
//!    queued;
//! 3. cycles: a command queued for every device through the admin API
//!    (ProfileList, what `latchctl device profiles` sends), then every
//!    device's session: Idle, the command, Acknowledged, nothing more;
//! 4. lock: one `LockDevices` call for the whole fleet (`latchctl device
//!    lock --ids-from`); each push wakes its device, which fetches the
//!    DeviceLock and acknowledges it.
//!
//! The server is a separate process: latchkeyd's library started by this
//! binary (`apple-fleet-server`) with the one seam tests replace, APNs:
//! instead of `a2` (whose endpoint is Apple's and cannot be changed), each
//! push is written to a local socket, where the bench wakes the device the
//! token belongs to. Everything else, from the push's target and its
//! recorded result up, is the server's own code.
//!
//! The devices send over `--in-flight` kept-alive TLS connections (as
//! behind a TLS-terminating proxy, which is what `Mdm-Signature` is for):
//! connection set-up is not part of the per-message figures. Each device
//! signs its Idle report once and reuses it (the server verifies every
//! signature it receives); every other message is signed when sent.
//!
//! `LATCHKEY_BENCH_PERF_CONTROL` (see `PerfControl`) profiles the cycles.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::future::BoxFuture;
use latchkey_certs::PrivateKeyPem;
use latchkey_proto::v1;
use latchkey_tests::apple::{EnrollmentProfile, KeptAliveConnection, SimulatedAppleDevice};
use latchkeyd::domain::apple::push::{PushOutcome, PushTarget};
use latchkeyd::push::apns::{Apns, ApnsError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, Semaphore, mpsc};

use super::{Admin, Server, cpu_ns, percentile};

pub struct Options {
    pub devices: usize,
    pub runs: usize,
    pub in_flight: usize,
    pub cycles_per_device: usize,
    pub key_cache: Option<PathBuf>,
}

// ---------------------------------------------------------------------------
// The server process.

/// APNs for the bench's server process: each push's token (hex) is written
/// as a line to the bench, which plays every device.
struct LoopbackApns {
    lines: mpsc::UnboundedSender<Vec<u8>>,
}

impl Apns for LoopbackApns {
    fn install(
        &self,
        _topic: &str,
        _certificate_pem: &str,
        _key: &PrivateKeyPem,
    ) -> Result<(), ApnsError> {
        Ok(())
    }

    fn push<'a>(
        &'a self,
        targets: &'a [PushTarget],
        _now: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Vec<PushOutcome>> {
        let mut lines = Vec::with_capacity(targets.len() * 65);
        for target in targets {
            lines.extend_from_slice(hex::encode(&target.token).as_bytes());
            lines.push(b'\n');
        }
        let outcome = if self.lines.send(lines).is_ok() {
            PushOutcome::Sent
        } else {
            PushOutcome::Unavailable {
                reason: "the bench's push socket is closed".into(),
            }
        };
        Box::pin(std::future::ready(vec![outcome; targets.len()]))
    }
}

/// Runs latchkeyd as its `main` does, with pushes going to `push_socket`.
pub async fn serve(data_dir: PathBuf, push_socket: PathBuf, listen: [String; 4]) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let _ = latchkeyd::descriptors::raise_soft_to_hard();
    let mut socket = tokio::net::UnixStream::connect(&push_socket).await?;
    let (lines, mut queued) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(batch) = queued.recv().await {
            if socket.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    let [listen_grpc, listen_mqtt, listen_https, listen_https_device] = listen;
    let config = latchkeyd::FileConfig::default().validate(latchkeyd::Overrides {
        data_dir: Some(data_dir),
        listen_grpc: Some(listen_grpc),
        listen_mqtt: Some(listen_mqtt),
        listen_https: Some(listen_https),
        listen_https_device: Some(listen_https_device),
    })?;
    let listeners = latchkeyd::Listeners::bind(&config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = latchkeyd::start_with(
        config,
        listeners,
        shutdown.clone(),
        latchkeyd::Seams {
            apns: Arc::new(LoopbackApns { lines }),
        },
    )
    .await?;
    println!("latchkeyd is running (pushes to the bench)");
    println!("  gRPC (admin + device API)  https://{}", running.grpc_addr);
    println!(
        "  HTTPS                      https://{}",
        running.https_addr
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    term.recv().await;
    shutdown.cancel();
    running.wait().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// The fleet's keys.

const KEY_END: &str = "-----END PRIVATE KEY-----";

/// `n` RSA-2048 keys: those in `path`, and new ones made on every core
/// (and appended to it) when it holds fewer.
fn fleet_keys(path: &Path, n: usize) -> Result<Vec<PrivateKeyPem>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut keys: Vec<PrivateKeyPem> = text
        .split_inclusive(KEY_END)
        .filter(|block| block.contains(KEY_END))
        .map(|block| PrivateKeyPem::new(format!("{}\n", block.trim())))
        .collect();
    if keys.len() < n {
        let missing = n - keys.len();
        let started = Instant::now();
        eprintln!(
            "apple-fleet: making {missing} RSA-2048 keys into {} (once; later runs reuse them)",
            path.display()
        );
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let made: Vec<Vec<PrivateKeyPem>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let count = missing / threads + usize::from(t < missing % threads);
                    scope.spawn(move || {
                        (0..count)
                            .map(|_| latchkey_certs::scep::Requester::generate_key())
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("key thread").map_err(anyhow::Error::from))
                .collect::<Result<_>>()
        })?;
        let mut file = String::new();
        for key in made.into_iter().flatten() {
            file.push_str(key.expose());
            keys.push(key);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        std::io::Write::write_all(&mut out, file.as_bytes())?;
        eprintln!(
            "apple-fleet: {missing} keys made in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    keys.truncate(n);
    Ok(keys)
}

// ---------------------------------------------------------------------------
// The fleet.

/// One simulated device, ready for the command channel.
struct FleetDevice {
    sim: SimulatedAppleDevice,
    id: String,
    check_in_path: String,
    server_path: String,
    /// Its Idle report, signed once.
    idle: Vec<u8>,
    idle_headers: Vec<(&'static str, String)>,
    /// Its Acknowledged to the command of this round (its id), signed
    /// before the round.
    presigned: std::sync::Mutex<Option<Presigned>>,
}

struct Presigned {
    command_uuid: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

/// Times in µs since the run's start; 0 is "not yet".
struct Marks {
    start: Instant,
    lock_called: Vec<AtomicU64>,
    lock_pushed: Vec<AtomicU64>,
    lock_acked: Vec<AtomicU64>,
    /// Pushes are recorded as lock pushes while this is set.
    locking: AtomicBool,
    pushes: AtomicUsize,
    lock_acks: AtomicUsize,
}

impl Marks {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// What a worker does for one device.
#[derive(Clone, Copy)]
enum Step {
    Authenticate,
    TokenUpdate,
    Session,
}

fn path_of(url: &str) -> Result<String> {
    Ok(url::Url::parse(url)?.path().to_owned())
}

async fn step(
    fleet: &[FleetDevice],
    index: usize,
    step: Step,
    connection: &mut KeptAliveConnection,
    marks: &Marks,
) -> Result<()> {
    let device = &fleet[index];
    match step {
        Step::Authenticate | Step::TokenUpdate => {
            let body = match step {
                Step::Authenticate => device.sim.authenticate_message()?,
                _ => device.sim.token_update_message()?,
            };
            let headers = device.sim.signed_headers(&body)?;
            let (status, reply) = connection
                .put(&device.check_in_path, &headers, &body)
                .await?;
            if status != 200 {
                bail!(
                    "check-in answered {status}: {}",
                    String::from_utf8_lossy(&reply)
                );
            }
        }
        Step::Session => {
            let mut body = device.idle.clone();
            let mut headers = device.idle_headers.clone();
            let mut answering_lock = false;
            for _ in 0..64 {
                let (status, reply) = connection.put(&device.server_path, &headers, &body).await?;
                if answering_lock {
                    marks.lock_acked[index].store(marks.now(), Ordering::Relaxed);
                    marks.lock_acks.fetch_add(1, Ordering::Relaxed);
                }
                match device.sim.answer_reply(status, &reply)? {
                    None => return Ok(()),
                    Some((received, next)) => {
                        answering_lock = received.request_type == "DeviceLock";
                        let presigned = device
                            .presigned
                            .lock()
                            .ok()
                            .and_then(|mut p| p.take())
                            .filter(|p| p.command_uuid == received.command_uuid && p.body == next);
                        headers = match presigned {
                            Some(p) => p.headers,
                            None => device.sim.signed_headers(&next)?.into(),
                        };
                        body = next;
                    }
                }
            }
            bail!("the server kept sending commands");
        }
    }
    Ok(())
}

/// Runs `in_flight` workers, each with its own kept-alive connection, over
/// the device indices that arrive on `queue` until it closes.
async fn workers(
    fleet: &Arc<Vec<FleetDevice>>,
    marks: &Arc<Marks>,
    https: std::net::SocketAddr,
    ca_pem: &str,
    in_flight: usize,
    kind: Step,
    queue: mpsc::UnboundedReceiver<usize>,
) -> Result<()> {
    let queue = Arc::new(Mutex::new(queue));
    let mut tasks = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (fleet, marks, queue) = (fleet.clone(), marks.clone(), queue.clone());
        let mut connection = KeptAliveConnection::new(https, ca_pem)?;
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(index) = queue.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                step(&fleet, index, kind, &mut connection, &marks)
                    .await
                    .with_context(|| format!("device {index}"))?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Every device once through `kind`; the wall time and the server's CPU (s).
async fn phase(
    server: &Server,
    fleet: &Arc<Vec<FleetDevice>>,
    marks: &Arc<Marks>,
    in_flight: usize,
    kind: Step,
) -> Result<(f64, f64)> {
    let (queue, work) = mpsc::unbounded_channel();
    for index in 0..fleet.len() {
        queue.send(index)?;
    }
    drop(queue);
    let cpu = cpu_ns(server.pid)?;
    let started = Instant::now();
    workers(
        fleet,
        marks,
        server.https_addr,
        &server.ca_pem,
        in_flight,
        kind,
        work,
    )
    .await?;
    let wall = started.elapsed().as_secs_f64();
    Ok((wall, (cpu_ns(server.pid)? - cpu) as f64 / 1e9))
}

/// Signs each device's Acknowledged to its command in `queued` (device id
/// → command id) ahead of the round, on the blocking pool, as a real
/// device's own CPU would: the round then measures the server, not the
/// load generator's RSA signatures (the server verifies each one).
async fn presign(
    fleet: &Arc<Vec<FleetDevice>>,
    queued: &std::sync::Mutex<HashMap<String, String>>,
    request_type: &'static str,
) -> Result<()> {
    let queued = queued
        .lock()
        .map_err(|_| anyhow::anyhow!("the queued commands' lock is poisoned"))?
        .clone();
    let queued = Arc::new(queued);
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (fleet, queued) = (fleet.clone(), queued.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            for device in fleet.iter().skip(worker).step_by(workers) {
                let Some(command) = queued.get(&device.id) else {
                    continue;
                };
                let body = device.sim.acknowledgement(command, request_type)?;
                let headers = device.sim.signed_headers(&body)?.into();
                if let Ok(mut slot) = device.presigned.lock() {
                    *slot = Some(Presigned {
                        command_uuid: command.clone(),
                        body,
                        headers,
                    });
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Calls the admin API for every device id, `in_flight` at a time; the
/// wall time and the server's CPU (s).
async fn admin_calls<F>(
    server: &Server,
    ids: &[String],
    in_flight: usize,
    call: F,
) -> Result<(f64, f64)>
where
    F: Fn(Admin, String) -> BoxFuture<'static, Result<()>>,
{
    let admin = server.admin().await?;
    let limit = Arc::new(Semaphore::new(in_flight));
    let cpu = cpu_ns(server.pid)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(ids.len());
    for id in ids {
        let permit = limit.clone().acquire_owned().await?;
        let future = call(admin.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let result = future.await;
            drop(permit);
            result
        }));
    }
    for task in tasks {
        task.await??;
    }
    let wall = started.elapsed().as_secs_f64();
    Ok((wall, (cpu_ns(server.pid)? - cpu) as f64 / 1e9))
}

/// The figures of one run.
#[derive(Default, Clone)]
struct Figures {
    scep_per_s: f64,
    scep_cpu_us: f64,
    authenticate_cpu_us: f64,
    token_update_cpu_us: f64,
    inventory_s: f64,
    inventory_cpu_us: f64,
    queue_cpu_us: f64,
    cycles_per_s: f64,
    cycle_cpu_us: f64,
    locks_issued_s: f64,
    pushes_all_s: f64,
    lock_push_p50_ms: f64,
    lock_push_p99_ms: f64,
    lock_push_max_ms: f64,
    lock_ack_p50_ms: f64,
    lock_ack_p99_ms: f64,
    lock_ack_max_ms: f64,
    last_ack_s: f64,
    lock_cpu_us: f64,
    server_rss_mib: f64,
}

pub async fn bench(options: Options) -> Result<()> {
    let key_cache = match &options.key_cache {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("apple-fleet-keys.pem"),
    };
    let keys = Arc::new(fleet_keys(&key_cache, options.devices)?);
    let mut all = Vec::with_capacity(options.runs);
    for run in 1..=options.runs {
        println!("apple-fleet run {run} of {}", options.runs);
        let figures = one_run(&options, &keys).await?;
        all.push(figures);
    }
    if all.len() > 1 {
        summary(&options, &all);
    }
    Ok(())
}

/// A summary line: its name, the figure, its unit.
type Row = (&'static str, fn(&Figures) -> f64, &'static str);

fn summary(options: &Options, all: &[Figures]) {
    let stat = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (percentile(&v, 50.0), v[0], v[v.len() - 1])
    };
    println!(
        "apple-fleet: {} devices, medians of {} runs [min–max]",
        options.devices,
        all.len()
    );
    let rows: [Row; 20] = [
        ("SCEP enrollments per second", |f| f.scep_per_s, "/s"),
        ("server CPU per SCEP enrollment", |f| f.scep_cpu_us, "µs"),
        (
            "server CPU per Authenticate",
            |f| f.authenticate_cpu_us,
            "µs",
        ),
        (
            "server CPU per TokenUpdate",
            |f| f.token_update_cpu_us,
            "µs",
        ),
        ("first inventory, all devices", |f| f.inventory_s, "s"),
        (
            "server CPU per device's first inventory",
            |f| f.inventory_cpu_us,
            "µs",
        ),
        (
            "server CPU per queued command (admin call, push)",
            |f| f.queue_cpu_us,
            "µs",
        ),
        (
            "fetch-and-acknowledge cycles per second",
            |f| f.cycles_per_s,
            "/s",
        ),
        ("server CPU per cycle", |f| f.cycle_cpu_us, "µs"),
        ("lock calls issued in", |f| f.locks_issued_s, "s"),
        ("every push sent after", |f| f.pushes_all_s, "s"),
        ("lock call -> push p50", |f| f.lock_push_p50_ms, "ms"),
        ("lock call -> push p99", |f| f.lock_push_p99_ms, "ms"),
        ("lock call -> push max", |f| f.lock_push_max_ms, "ms"),
        ("lock call -> acknowledged p50", |f| f.lock_ack_p50_ms, "ms"),
        ("lock call -> acknowledged p99", |f| f.lock_ack_p99_ms, "ms"),
        ("lock call -> acknowledged max", |f| f.lock_ack_max_ms, "ms"),
        ("last acknowledgement after", |f| f.last_ack_s, "s"),
        (
            "server CPU per lock (call, push, fetch, ack)",
            |f| f.lock_cpu_us,
            "µs",
        ),
        ("server RSS at the end", |f| f.server_rss_mib, "MiB"),
    ];
    for (name, f, unit) in rows {
        let (median, min, max) = stat(f);
        let digits = if unit == "s" { 2 } else { 0 };
        println!("  {name:<50} {median:>9.digits$} {unit} [{min:.digits$}–{max:.digits$}]");
    }
}

async fn one_run(options: &Options, keys: &Arc<Vec<PrivateKeyPem>>) -> Result<Figures> {
    let n = options.devices;
    let in_flight = options.in_flight;
    let mut figures = Figures::default();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let socket_path = dir.path().join("push.sock");
    let push_socket = tokio::net::UnixListener::bind(&socket_path)?;
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .arg("apple-fleet-server")
        .arg("--push-socket")
        .arg(&socket_path);
    let server = Server::spawn(command, &data).await?;
    let (push_stream, _) = push_socket.accept().await?;
    let admin = server.admin().await?;

    // The push certificate, and one enrollment profile per device.
    let topic = latchkey_tests::apple::TEST_TOPIC;
    let now = chrono::Utc::now();
    let (cert, key) = latchkey_certs::apns::self_signed_push_certificate(
        topic,
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(365),
    )?;
    admin
        .clone()
        .import_apple_push_certificate(v1::ImportApplePushCertificateRequest {
            certificate_pem: cert,
            key_pem: key.expose().to_owned(),
            force: false,
        })
        .await?;
    let limit = Arc::new(Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(n);
    for key in keys.iter() {
        let permit = limit.clone().acquire_owned().await?;
        let mut admin = admin.clone();
        let (https, ca_pem, key) = (server.https_addr, server.ca_pem.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let profile = admin
                .create_apple_enrollment_profile(v1::CreateAppleEnrollmentProfileRequest {
                    user: String::new(),
                })
                .await?
                .into_inner();
            drop(permit);
            let mut device = SimulatedAppleDevice::iphone(
                EnrollmentProfile::read(&profile.profile)?,
                https,
                &ca_pem,
            );
            device.scep_key = Some(key);
            anyhow::Ok(device)
        }));
    }
    let mut devices = Vec::with_capacity(n);
    for task in tasks {
        devices.push(task.await??);
    }

    // SCEP.
    let cpu = cpu_ns(server.pid)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for mut device in devices {
        let permit = limit.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            if let Err(refused) = device.scep_enroll().await? {
                bail!("SCEP refused: {refused}");
            }
            drop(permit);
            anyhow::Ok(device)
        }));
    }
    let mut fleet = Vec::with_capacity(n);
    for task in tasks {
        let sim = task.await??;
        let id = latchkey_certs::inspect_certificate(&sim.identity_der().context("identity")?)?
            .device_id
            .context("the identity certificate names no device")?;
        let idle = sim.idle_report()?;
        let idle_headers = sim.signed_headers(&idle)?.into();
        fleet.push(FleetDevice {
            check_in_path: path_of(&sim.profile.check_in_url)?,
            server_path: path_of(&sim.profile.server_url)?,
            sim,
            id,
            idle,
            idle_headers,
            presigned: std::sync::Mutex::new(None),
        });
    }
    let wall = started.elapsed().as_secs_f64();
    figures.scep_per_s = n as f64 / wall;
    figures.scep_cpu_us = (cpu_ns(server.pid)? - cpu) as f64 / 1e3 / n as f64;
    println!(
        "  SCEP                 {n} identities in {wall:.2} s ({:.0}/s), server CPU {:.0} µs each",
        figures.scep_per_s, figures.scep_cpu_us
    );
    let fleet = Arc::new(fleet);
    let ids: Vec<String> = fleet.iter().map(|d| d.id.clone()).collect();

    // Pushes: each line is a device's token; while locking, the device
    // is woken (a session on the command channel).
    let marks = Arc::new(Marks {
        start: Instant::now(),
        lock_called: (0..n).map(|_| AtomicU64::new(0)).collect(),
        lock_pushed: (0..n).map(|_| AtomicU64::new(0)).collect(),
        lock_acked: (0..n).map(|_| AtomicU64::new(0)).collect(),
        locking: AtomicBool::new(false),
        pushes: AtomicUsize::new(0),
        lock_acks: AtomicUsize::new(0),
    });
    let by_token: HashMap<String, usize> = fleet
        .iter()
        .enumerate()
        .map(|(i, d)| (hex::encode(&d.sim.push_token), i))
        .collect();
    let wake: Arc<std::sync::Mutex<Option<mpsc::UnboundedSender<usize>>>> = Arc::default();
    let reader = {
        let (marks, wake) = (marks.clone(), wake.clone());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(push_stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(&index) = by_token.get(line.trim()) else {
                    continue;
                };
                marks.pushes.fetch_add(1, Ordering::Relaxed);
                if marks.locking.load(Ordering::Relaxed) {
                    let _ = marks.lock_pushed[index].compare_exchange(
                        0,
                        marks.now(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    if let Some(wake) = wake.lock().expect("wake").as_ref() {
                        let _ = wake.send(index);
                    }
                }
            }
        })
    };

    // Check-in: Authenticate, TokenUpdate, then the first inventory.
    let (wall, cpu) = phase(&server, &fleet, &marks, in_flight, Step::Authenticate).await?;
    figures.authenticate_cpu_us = cpu * 1e6 / n as f64;
    println!(
        "  Authenticate         {n} in {wall:.2} s ({:.0}/s), server CPU {:.0} µs per message",
        n as f64 / wall,
        figures.authenticate_cpu_us
    );
    let (wall, cpu) = phase(&server, &fleet, &marks, in_flight, Step::TokenUpdate).await?;
    figures.token_update_cpu_us = cpu * 1e6 / n as f64;
    println!(
        "  TokenUpdate          {n} in {wall:.2} s ({:.0}/s), server CPU {:.0} µs per message (queues the first inventory, pushes)",
        n as f64 / wall,
        figures.token_update_cpu_us
    );
    let (wall, cpu) = phase(&server, &fleet, &marks, in_flight, Step::Session).await?;
    figures.inventory_s = wall;
    figures.inventory_cpu_us = cpu * 1e6 / n as f64;
    let first: usize = fleet.iter().map(|d| d.sim.received().len()).sum();
    println!(
        "  first inventory      {first} commands to {n} devices in {wall:.2} s, server CPU {:.0} µs per device",
        figures.inventory_cpu_us
    );

    // Cycles: one ProfileList per device per round, queued through the
    // admin API first; then every device's session.
    let mut cycles_wall = 0.0;
    let mut cycles_cpu = 0.0;
    let mut queue_cpu = 0.0;
    let mut perf = super::PerfControl::from_env()?;
    for _ in 0..options.cycles_per_device {
        let queued: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
        let (_, cpu) = {
            let queued = queued.clone();
            admin_calls(&server, &ids, in_flight, move |mut admin, id| {
                let queued = queued.clone();
                Box::pin(async move {
                    let answer = admin
                        .list_device_profiles(v1::ListDeviceProfilesRequest { id: id.clone() })
                        .await?
                        .into_inner();
                    let command = answer.command.context("no command in the answer")?.id;
                    if let Ok(mut queued) = queued.lock() {
                        queued.insert(id, command);
                    }
                    Ok(())
                })
            })
            .await?
        };
        presign(&fleet, &queued, "ProfileList").await?;
        queue_cpu += cpu;
        let before: usize = fleet.iter().map(|d| d.sim.received().len()).sum();
        perf.enable()?;
        let (wall, cpu) = phase(&server, &fleet, &marks, in_flight, Step::Session).await?;
        perf.disable()?;
        let after: usize = fleet.iter().map(|d| d.sim.received().len()).sum();
        if after - before != n {
            bail!("{} commands fetched in a round, not {n}", after - before);
        }
        let unused = fleet
            .iter()
            .filter(|d| d.presigned.lock().is_ok_and(|p| p.is_some()))
            .count();
        if unused != 0 {
            bail!("{unused} devices did not send the Acknowledged signed for them");
        }
        cycles_wall += wall;
        cycles_cpu += cpu;
    }
    let cycles = (n * options.cycles_per_device) as f64;
    figures.queue_cpu_us = queue_cpu * 1e6 / cycles;
    figures.cycles_per_s = cycles / cycles_wall;
    figures.cycle_cpu_us = cycles_cpu * 1e6 / cycles;
    println!(
        "  cycles               {cycles} (Idle -> ProfileList -> Acknowledged -> nothing) in {cycles_wall:.2} s: {:.0}/s, server CPU {:.0} µs per cycle; queuing {:.0} µs per command",
        figures.cycles_per_s, figures.cycle_cpu_us, figures.queue_cpu_us
    );

    // Lock every device: the pushes wake the devices.
    let (wake_sender, woken) = mpsc::unbounded_channel();
    *wake.lock().expect("wake") = Some(wake_sender);
    marks.locking.store(true, Ordering::Relaxed);
    let sessions = {
        let (fleet, marks, ca_pem) = (fleet.clone(), marks.clone(), server.ca_pem.clone());
        let https = server.https_addr;
        tokio::spawn(async move {
            workers(
                &fleet,
                &marks,
                https,
                &ca_pem,
                in_flight,
                Step::Session,
                woken,
            )
            .await
        })
    };
    let cpu = cpu_ns(server.pid)?;
    let lock_start = marks.now();
    for called in &marks.lock_called {
        called.store(lock_start, Ordering::Relaxed);
    }
    let call = Instant::now();
    let answer = admin
        .clone()
        .lock_devices(v1::LockDevicesRequest {
            ids: ids.clone(),
            message: "This iPhone is locked by IT".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let issued = call.elapsed().as_secs_f64();
    if answer.locked.len() != n {
        bail!(
            "{} of {n} devices locked; skipped: {:?}",
            answer.locked.len(),
            answer.skipped.first()
        );
    }
    figures.locks_issued_s = issued;
    let deadline = Instant::now() + Duration::from_secs(600);
    while marks.lock_acks.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} locks acknowledged",
                marks.lock_acks.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lock_cpu = (cpu_ns(server.pid)? - cpu) as f64 / 1e9;
    *wake.lock().expect("wake") = None;
    marks.locking.store(false, Ordering::Relaxed);
    sessions.await??;
    let (_, rss) = super::usage(server.pid)?;
    figures.server_rss_mib = rss as f64 / 1024.0;
    figures.lock_cpu_us = lock_cpu * 1e6 / n as f64;
    let ms = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / 1000.0;
    let mut to_push = Vec::with_capacity(n);
    let mut to_ack = Vec::with_capacity(n);
    let mut last_push = 0;
    let mut last_ack = 0;
    for i in 0..n {
        let called = marks.lock_called[i].load(Ordering::Relaxed);
        let pushed = marks.lock_pushed[i].load(Ordering::Relaxed);
        let acked = marks.lock_acked[i].load(Ordering::Relaxed);
        if pushed == 0 {
            bail!("device {i} was never pushed its lock");
        }
        to_push.push(ms(pushed, called));
        to_ack.push(ms(acked, called));
        last_push = last_push.max(pushed);
        last_ack = last_ack.max(acked);
    }
    to_push.sort_by(f64::total_cmp);
    to_ack.sort_by(f64::total_cmp);
    figures.pushes_all_s = ms(last_push, lock_start) / 1000.0;
    figures.last_ack_s = ms(last_ack, lock_start) / 1000.0;
    figures.lock_push_p50_ms = percentile(&to_push, 50.0);
    figures.lock_push_p99_ms = percentile(&to_push, 99.0);
    figures.lock_push_max_ms = to_push[n - 1];
    figures.lock_ack_p50_ms = percentile(&to_ack, 50.0);
    figures.lock_ack_p99_ms = percentile(&to_ack, 99.0);
    figures.lock_ack_max_ms = to_ack[n - 1];
    println!(
        "  lock                 one LockDevices call for {n} devices answered in {issued:.2} s; every push sent after {:.2} s, last acknowledgement after {:.2} s",
        figures.pushes_all_s, figures.last_ack_s
    );
    println!(
        "    lock call -> push  p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        figures.lock_push_p50_ms, figures.lock_push_p99_ms, figures.lock_push_max_ms
    );
    println!(
        "    lock call -> ack   p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        figures.lock_ack_p50_ms, figures.lock_ack_p99_ms, figures.lock_ack_max_ms
    );
    println!(
        "    server CPU {:.0} µs per lock (call, push, fetch, acknowledgement); {} pushes in the run; server RSS {:.0} MiB",
        figures.lock_cpu_us,
        marks.pushes.load(Ordering::Relaxed),
        figures.server_rss_mib
    );
    server.stop().await?;
    reader.abort();
    Ok(figures)
}
