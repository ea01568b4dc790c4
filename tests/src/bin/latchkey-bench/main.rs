//! latchkey-bench: the benchmarks behind docs/PERFORMANCE.md. Each starts the
//! release `latchkeyd` (and `latchkey-agent`) from the same target directory
//! as a separate process, so the figures for the server are its own CPU time
//! (from /proc), not the load generator's.
//!
//!   cargo build --release -p latchkeyd -p latchkey-agent -p latchkey-tests
//!   target/release/latchkey-bench enroll --agents 2000
//!   target/release/latchkey-bench lock-fanout --devices 2000
//!   target/release/latchkey-bench lock-fanout --devices 2000 --external
//!   target/release/latchkey-bench idle-agent --seconds 60
//!   target/release/latchkey-bench device-auth --logins 200
//!   target/release/latchkey-bench password-logins --attempts 1000
//!   target/release/latchkey-bench apple-fleet --devices 5000 --runs 3

// A measuring tool: a panic is a failed run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use latchkey_proto::v1::{
    self, admin_service_client::AdminServiceClient, device_service_client::DeviceServiceClient,
};
use prost::Message;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

mod apple_fleet;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The ECDSA P-256 check of one device statement (a compact JWS), as
    /// the server makes it for every answer: CPU per verification on this
    /// machine, for comparison with the figures above it.
    Verify {
        #[arg(long, default_value_t = 20000)]
        count: usize,
    },
    /// Agents enrolling over gRPC (each its own TLS connection) on SQLite.
    Enroll {
        #[arg(long, default_value_t = 2000)]
        agents: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// A latchkeyd configuration file (e.g. a PostgreSQL database.url).
        #[arg(long)]
        server_config: Option<PathBuf>,
        /// Send a token the server refuses before any database or CA work:
        /// the cost of the connection and the gRPC call alone.
        #[arg(long)]
        refused: bool,
    },
    /// Connected MQTT device sessions, one lock to each; latency from
    /// `device lock` to the acknowledgement, as the server recorded both.
    LockFanout {
        #[arg(long, default_value_t = 2000)]
        devices: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Through a Mosquitto broker instead of the embedded one.
        #[arg(long)]
        external: bool,
    },
    /// A real agent connected and idle: resident memory and CPU.
    IdleAgent {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Device-bound sign-ins one after another with a real agent process:
    /// from "authenticate with this device" (the URL handler runs
    /// `latchkey-agent open-url`) to the page's wait seeing the
    /// confirmation, and the server CPU that step costs.
    DeviceAuth {
        #[arg(long, default_value_t = 200)]
        logins: usize,
        /// Measure the server CPU of each of the device's two calls alone
        /// (`GetDeviceAuth`, `AnswerDeviceAuth`): the bench makes them with
        /// the enrolled device's certificate and key over one mTLS channel,
        /// as the running agent does, and nothing else runs meanwhile.
        #[arg(long)]
        answer_only: bool,
        /// With `--answer-only`: first bring all the sign-ins to the device
        /// step, then answer them this many at a time, and report the
        /// server CPU per answer under that load.
        #[arg(long, requires = "answer_only")]
        in_flight: Option<usize>,
        /// A latchkeyd configuration file (e.g. a PostgreSQL database.url).
        #[arg(long)]
        server_config: Option<PathBuf>,
    },
    /// A burst of browser sign-ins (password only) all started at once:
    /// throughput and the server's memory during the burst.
    PasswordLogins {
        #[arg(long, default_value_t = 1000)]
        attempts: usize,
        /// Bursts one after another on the same server (memory must not
        /// grow from one to the next).
        #[arg(long, default_value_t = 3)]
        bursts: usize,
    },
    /// A fleet of simulated Apple devices (SCEP identities, signed
    /// check-ins, the command channel) on SQLite: check-in CPU per
    /// message, command fetch-and-acknowledge cycles per second, and a
    /// lock of every device, from the lock calls to the pushes and the
    /// last acknowledgement.
    AppleFleet {
        #[arg(long, default_value_t = 5000)]
        devices: usize,
        /// Runs one after another, each with a fresh server.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Device sessions (and admin calls) in flight at once.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// Commands each device fetches and acknowledges in the cycles
        /// phase (one per session: Idle, the command, Acknowledged).
        #[arg(long, default_value_t = 2)]
        cycles_per_device: usize,
        /// The fleet's RSA keys (PKCS#8 PEM, one after another), made on
        /// the first run and reused. Default: beside the bench binary.
        #[arg(long)]
        key_cache: Option<PathBuf>,
    },
    /// The server process `apple-fleet` starts: latchkeyd, its APNs
    /// pushes handed to the bench over a local socket (not for direct use).
    #[command(hide = true)]
    AppleFleetServer {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        push_socket: PathBuf,
        #[arg(long)]
        listen_grpc: String,
        #[arg(long)]
        listen_mqtt: String,
        #[arg(long)]
        listen_https: String,
        #[arg(long)]
        listen_https_device: String,
    },
}

/// Adds the admin API token to every call.
#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Admin = AdminServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

struct Server {
    child: tokio::process::Child,
    pid: u32,
    grpc_url: String,
    https_addr: std::net::SocketAddr,
    ca_pem: String,
    token: String,
    data_dir: PathBuf,
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("exe dir")?.join(name);
    if !path.exists() {
        bail!(
            "{} not found: cargo build --release -p latchkeyd -p latchkey-agent",
            path.display()
        );
    }
    Ok(path)
}

/// (user+system CPU seconds, resident set in KiB) of a process.
fn usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks as f64 / 100.0, rss))
}

impl Server {
    async fn start(data_dir: &Path, config: Option<&Path>) -> Result<Server> {
        let mut command = tokio::process::Command::new(sibling("latchkeyd")?);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        Self::spawn(command, data_dir).await
    }

    /// Starts `command` (latchkeyd, or the bench's own server process)
    /// with a fresh data directory and listeners on port 0, and reads the
    /// addresses it prints.
    async fn spawn(mut command: tokio::process::Command, data_dir: &Path) -> Result<Server> {
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--listen-grpc",
                "127.0.0.1:0",
                "--listen-mqtt",
                "127.0.0.1:0",
                "--listen-https",
                "127.0.0.1:0",
                "--listen-https-device",
                "127.0.0.1:0",
            ])
            .env(
                "LATCHKEY_LOG",
                std::env::var("LATCHKEY_BENCH_SERVER_LOG")
                    .unwrap_or_else(|_| "warn,rumqttd=off".into()),
            )
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let pid = child.id().context("pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut grpc = None;
        let mut https = None;
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.trim().strip_prefix("gRPC (admin + device API)") {
                grpc = Some(
                    rest.trim()
                        .replace("https://127.0.0.1", "https://localhost"),
                );
            }
            if let Some(rest) = line.trim().strip_prefix("HTTPS") {
                https = rest.trim().strip_prefix("https://").map(str::to_owned);
                break;
            }
        }
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("latchkeyd: {line}");
            }
        });
        Ok(Server {
            child,
            pid,
            grpc_url: grpc.context("no gRPC address printed")?,
            https_addr: https.context("no HTTPS address printed")?.parse()?,
            ca_pem: std::fs::read_to_string(data_dir.join("ca.pem"))?,
            token: std::fs::read_to_string(data_dir.join("admin-token"))?
                .trim()
                .to_owned(),
            data_dir: data_dir.to_owned(),
        })
    }

    async fn admin(&self) -> Result<Admin> {
        let channel = latchkey_agent::enroll::channel(&self.grpc_url, &self.ca_pem, None).await?;
        let header = format!("Bearer {}", self.token).parse()?;
        Ok(AdminServiceClient::with_interceptor(
            channel,
            Bearer(header),
        ))
    }

    async fn stop(mut self) -> Result<()> {
        let pid = self.pid.to_string();
        tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await?;
        self.child.wait().await?;
        Ok(())
    }
}

/// CPU time of every thread of a process in nanoseconds (the scheduler's
/// own accounting, not the 10 ms ticks of `/proc/<pid>/stat`).
fn cpu_ns(pid: u32) -> Result<u64> {
    Ok(cpu_ns_by_thread(pid)?.values().sum())
}

/// CPU time per thread name (digits dropped, so a pool's threads add up),
/// in nanoseconds, from the same scheduler accounting as [`cpu_ns`].
fn cpu_ns_by_thread(pid: u32) -> Result<BTreeMap<String, u64>> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path();
        let (Ok(stat), Ok(comm)) = (
            std::fs::read_to_string(path.join("schedstat")),
            std::fs::read_to_string(path.join("comm")),
        ) else {
            continue;
        };
        let name: String = comm
            .trim()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let ns = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        *by_name.entry(name).or_insert(0) += ns;
    }
    Ok(by_name)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

struct Enrolled {
    device_id: String,
    mqtt_url: String,
    chain_pem: String,
    key: latchkey_certs::PrivateKeyPem,
}

/// Enrolls `n` devices with `concurrency` in flight, each on a new TLS
/// connection; returns them and the wall time of the enrollments alone.
async fn enroll_many(
    server: &Server,
    n: usize,
    concurrency: usize,
) -> Result<(Vec<Enrolled>, Duration)> {
    let mut admin = server.admin().await?;
    let token = admin
        .create_enrollment_token(v1::CreateEnrollmentTokenRequest {
            uses: Some(u32::try_from(n)?),
            expires_in_seconds: Some(3600),
            ..Default::default()
        })
        .await?
        .into_inner()
        .secret;
    let mut prepared = Vec::with_capacity(n);
    for _ in 0..n {
        prepared.push(latchkey_certs::new_key_and_csr("bench")?);
    }
    let limit = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, (key, csr)) in prepared.into_iter().enumerate() {
        let permit = limit.clone().acquire_owned().await?;
        let (url, ca, token) = (
            server.grpc_url.clone(),
            server.ca_pem.clone(),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let channel = latchkey_agent::enroll::channel(&url, &ca, None).await?;
            let response = DeviceServiceClient::new(channel)
                .enroll(v1::EnrollRequest {
                    token,
                    csr_der: csr,
                    facts: Some(v1::DeviceFacts {
                        hostname: format!("bench-{i}"),
                        platform: "linux".into(),
                        os_version: "12".into(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            drop(permit);
            anyhow::Ok(Enrolled {
                device_id: response.device_id,
                mqtt_url: response.mqtt_url,
                chain_pem: response.certificate_chain_pem,
                key,
            })
        }));
    }
    let mut enrolled = Vec::with_capacity(n);
    for task in tasks {
        enrolled.push(task.await??);
    }
    Ok((enrolled, started.elapsed()))
}

async fn bench_enroll(
    agents: usize,
    concurrency: usize,
    config: Option<PathBuf>,
    refused: bool,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), config.as_deref()).await?;
    if refused {
        let (cpu_before, _) = usage(server.pid)?;
        let started = Instant::now();
        let limit = Arc::new(Semaphore::new(concurrency));
        let mut tasks = Vec::with_capacity(agents);
        for _ in 0..agents {
            let permit = limit.clone().acquire_owned().await?;
            let (url, ca) = (server.grpc_url.clone(), server.ca_pem.clone());
            tasks.push(tokio::spawn(async move {
                let channel = latchkey_agent::enroll::channel(&url, &ca, None).await?;
                let refused = DeviceServiceClient::new(channel)
                    .enroll(v1::EnrollRequest {
                        token: "not-a-token".into(),
                        ..Default::default()
                    })
                    .await;
                drop(permit);
                anyhow::ensure!(refused.is_err(), "the server accepted a bogus token");
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let wall = started.elapsed();
        let (cpu_after, _) = usage(server.pid)?;
        println!(
            "enroll --refused: {agents} calls refused before any database or CA work, {concurrency} in flight, each a new TLS connection"
        );
        println!(
            "  throughput           {:.0} calls/s",
            agents as f64 / wall.as_secs_f64()
        );
        println!(
            "  server CPU           {:.0} µs per call",
            (cpu_after - cpu_before) * 1e6 / agents as f64
        );
        return server.stop().await;
    }
    let (cpu_before, _) = usage(server.pid)?;
    let (enrolled, wall) = enroll_many(&server, agents, concurrency).await?;
    let (cpu_after, rss) = usage(server.pid)?;
    let cpu = cpu_after - cpu_before;
    println!(
        "enroll: {} agents, {concurrency} in flight, each a new TLS connection, SQLite",
        enrolled.len()
    );
    println!("  wall time            {:.2} s", wall.as_secs_f64());
    println!(
        "  throughput           {:.0} enrollments/s",
        enrolled.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  server CPU           {:.2} s ({:.0} µs per enrollment)",
        cpu,
        cpu * 1e6 / enrolled.len() as f64
    );
    println!("  server RSS after     {} MiB", rss / 1024);
    server.stop().await
}

async fn bench_lock_fanout(devices: usize, concurrency: usize, external: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let _broker;
    let config = if external {
        let broker = latchkey_tests::Mosquitto::start(&data).await?;
        let path = dir.path().join("latchkeyd.toml");
        std::fs::write(&path, format!("[mqtt]\nexternal = \"{}\"\n", broker.url()))?;
        _broker = Some(broker);
        Some(path)
    } else {
        _broker = None;
        None
    };
    let server = Server::start(&data, config.as_deref()).await?;
    let (enrolled, _) = enroll_many(&server, devices, concurrency).await?;

    // Connect every device as a light MQTT client that acknowledges commands.
    let mqtt_url = enrolled.first().context("no devices")?.mqtt_url.clone();
    let (host, port) =
        latchkey_proto::text::parse_mqtts_url(&mqtt_url).map_err(anyhow::Error::msg)?;
    let connected = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let connect_started = Instant::now();
    let broker_pid = _broker.as_ref().and_then(latchkey_tests::Mosquitto::pid);
    let broker_cpu = || broker_pid.map_or(Ok(0.0), |pid| usage(pid).map(|(cpu, _)| cpu));
    let broker_connect_before = broker_cpu()?;
    let (cpu_connect_before, _) = usage(server.pid)?;
    for (started_sessions, device) in enrolled.iter().enumerate() {
        let tls = latchkey_certs::tls::client_config(
            &server.ca_pem,
            Some((device.chain_pem.as_str(), &device.key)),
        )?;
        let mut options = rumqttc::MqttOptions::new(device.device_id.clone(), host.clone(), port);
        options
            .set_keep_alive(Duration::from_secs(60))
            .set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
                tls,
            )));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 16);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_connection_timeout(30).set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        // Ramp up: at most 64 sessions connecting at a time.
        while connected.load(Ordering::Relaxed) + 64 <= started_sessions {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let id = device.device_id.clone();
        let connected = connected.clone();
        let received = received.clone();
        let errors = errors.clone();
        tokio::spawn(async move {
            let cmd = latchkey_proto::topics::command(&id);
            let up = latchkey_proto::topics::up(&id);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        // As the agent does: subscribe, then hello, which
                        // makes the server resend anything still open.
                        let _ = client.try_subscribe(&cmd, rumqttc::QoS::AtLeastOnce);
                        let hello = v1::AgentMessage {
                            id: format!("hello-{id}"),
                            body: Some(v1::agent_message::Body::Hello(v1::Hello {
                                agent_version: "bench".into(),
                                policy_version: 0,
                            })),
                        };
                        let _ = client.try_publish(
                            &up,
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            hello.encode_to_vec(),
                        );
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if let Ok(v1::ServerMessage {
                            body: Some(v1::server_message::Body::Command(c)),
                        }) = v1::ServerMessage::decode(p.payload.as_ref())
                        {
                            received.fetch_add(1, Ordering::Relaxed);
                            let ack = v1::AgentMessage {
                                id: c.id.clone(),
                                body: Some(v1::agent_message::Body::Ack(v1::CommandAck {
                                    command_id: c.id,
                                    success: true,
                                    result: "bench".into(),
                                })),
                            };
                            let _ = client.try_publish(
                                &up,
                                rumqttc::QoS::AtLeastOnce,
                                false,
                                ack.encode_to_vec(),
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("device session error: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while connected.load(Ordering::Relaxed) < devices {
        if Instant::now() > deadline {
            bail!(
                "only {} of {devices} sessions subscribed",
                connected.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_wall = connect_started.elapsed();
    let errors_while_connecting = errors.load(Ordering::Relaxed);
    let (cpu_connect_after, rss_connected) = usage(server.pid)?;
    let broker_connect = broker_cpu()? - broker_connect_before;

    // One lock to each device.
    let (cpu_before, _) = usage(server.pid)?;
    let broker_before = broker_cpu()?;
    let admin = server.admin().await?;
    let limit = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(devices);
    for device in &enrolled {
        let permit = limit.clone().acquire_owned().await?;
        let mut admin = admin.clone();
        let id = device.device_id.clone();
        tasks.push(tokio::spawn(async move {
            admin
                .lock_device(v1::LockDeviceRequest {
                    id,
                    ..Default::default()
                })
                .await?;
            drop(permit);
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let issued = started.elapsed();
    // Completion is read from the database file (read-only, beside the
    // server), so the polling costs the server nothing.
    let acked_count = acknowledged_counter(&server.data_dir).await?;
    loop {
        let acked = acked_count().await?;
        if acked >= devices {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("only {acked} of {devices} locks acknowledged");
        }
        if std::env::var_os("LATCHKEY_BENCH_TRACE").is_some()
            && started.elapsed().as_millis() % 1000 < 20
        {
            eprintln!(
                "t={:?} received by devices {} acknowledged {acked}, session errors {}",
                started.elapsed(),
                received.load(Ordering::Relaxed),
                errors.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_acked = started.elapsed();
    let errors_after_connecting = errors.load(Ordering::Relaxed) - errors_while_connecting;
    let (cpu_after, rss) = usage(server.pid)?;
    let broker_locks = broker_cpu()? - broker_before;
    let data_dir = server.data_dir.clone();
    server.stop().await?;

    // The server's own record of each command: created and acknowledged (ms).
    let store = latchkeyd::store::Store::connect(&format!(
        "sqlite://{}?mode=rw",
        data_dir.join("latchkey.db").display()
    ))
    .await?;
    let mut latencies = Vec::with_capacity(devices);
    for device in &enrolled {
        let id = latchkeyd::domain::ids::DeviceId::parse(&device.device_id).context("id")?;
        for command in store.list_commands(&id).await? {
            let acked = command.acked_at.context("unacknowledged")?;
            latencies
                .push((acked - command.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    store.close().await;
    latencies.sort_by(f64::total_cmp);
    let mode = if external {
        "external Mosquitto"
    } else {
        "embedded broker"
    };
    println!(
        "lock-fanout: {devices} connected device sessions, {mode}, {concurrency} lock calls in flight"
    );
    println!(
        "  sessions connected   {:.2} s ({:.0}/s), server CPU {:.0} µs per session, server RSS {} MiB",
        connect_wall.as_secs_f64(),
        devices as f64 / connect_wall.as_secs_f64(),
        (cpu_connect_after - cpu_connect_before) * 1e6 / devices as f64,
        rss_connected / 1024
    );
    println!(
        "  session errors       {errors_while_connecting} while connecting, {errors_after_connecting} during the locks (each followed by a reconnect and hello)"
    );
    if broker_pid.is_some() {
        println!(
            "  Mosquitto CPU        {:.0} µs per session connect, {:.0} µs per lock",
            broker_connect * 1e6 / devices as f64,
            broker_locks * 1e6 / devices as f64
        );
    }
    println!("  locks issued in      {:.2} s", issued.as_secs_f64());
    println!("  all acknowledged in  {:.2} s", all_acked.as_secs_f64());
    println!(
        "  lock -> ack latency  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );
    println!(
        "  server CPU           {:.0} µs per lock (lock call + publish + ack), RSS {} MiB",
        (cpu_after - cpu_before) * 1e6 / devices as f64,
        rss / 1024
    );
    Ok(())
}

/// A function that counts acknowledged commands in the server's SQLite file.
async fn acknowledged_counter(
    data_dir: &Path,
) -> Result<impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize>>>> + use<>>
{
    use sea_orm::{ConnectionTrait, Statement};
    let url = format!(
        "sqlite://{}?mode=ro",
        data_dir.join("latchkey.db").display()
    );
    let db = sea_orm::Database::connect(url).await?;
    Ok(move || {
        let db = db.clone();
        Box::pin(async move {
            let row = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT COUNT(*) AS n FROM commands WHERE status = 'acknowledged'",
                ))
                .await?
                .context("no row")?;
            let n: i64 = row.try_get("", "n")?;
            Ok(usize::try_from(n)?)
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize>>>>
    })
}

/// Enrolls a `latchkey-agent` with a one-use token (bound to `user` unless
/// empty), its state in `dir/agent`; returns the agent binary and that
/// state directory.
async fn enroll_agent(server: &Server, dir: &Path, user: &str) -> Result<(PathBuf, PathBuf)> {
    let token = server
        .admin()
        .await?
        .create_enrollment_token(v1::CreateEnrollmentTokenRequest {
            user: user.into(),
            uses: Some(1),
            ..Default::default()
        })
        .await?
        .into_inner()
        .secret;
    let state = dir.join("agent");
    let agent = sibling("latchkey-agent")?;
    let status = tokio::process::Command::new(&agent)
        .arg("--state-dir")
        .arg(&state)
        .args([
            "enroll",
            "--server",
            &server.grpc_url,
            "--token",
            &token,
            "--ca",
        ])
        .arg(server.data_dir.join("ca.pem"))
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("enroll failed");
    }
    Ok((agent, state))
}

async fn bench_idle_agent(seconds: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), None).await?;
    let (agent, state) = enroll_agent(&server, dir.path(), "").await?;
    let mut child = tokio::process::Command::new(&agent)
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--dry-run"])
        .env("LATCHKEY_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("pid")?;
    // Wait for the session, then a short settle for the first posture report.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = std::fs::read_to_string(state.join("status.json")).unwrap_or_default();
        if status.contains("\"connected\"") {
            break;
        }
        if Instant::now() > deadline {
            bail!("agent did not connect");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu_before, rss_before) = usage(pid)?;
    let mut samples = vec![rss_before];
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(usage(pid)?.1);
    }
    let (cpu_after, _) = usage(pid)?;
    samples.sort_unstable();
    println!("idle-agent: release latchkey-agent run, connected over mTLS MQTT, {seconds} s idle");
    println!(
        "  RSS                  median {:.1} MiB, max {:.1} MiB",
        samples[samples.len() / 2] as f64 / 1024.0,
        samples[samples.len() - 1] as f64 / 1024.0
    );
    println!(
        "  CPU while idle       {:.2} s over {seconds} s ({:.3} %)",
        cpu_after - cpu_before,
        (cpu_after - cpu_before) * 100.0 / seconds as f64
    );
    child.kill().await?;
    server.stop().await
}

use latchkey_tests::login::{self, CHOSEN_PASSWORD as PASSWORD, RP_CALLBACK};

/// The user the sign-in benchmarks sign in as.
const USER: &str = "alice@example.com";

/// An SSO app and a user whose password is set (the temporary one changed
/// through the sign-in pages); returns the app's client id.
async fn sso_setup(server: &Server, device: v1::DevicePolicy) -> Result<String> {
    let mut admin = server.admin().await?;
    let app = admin
        .add_app(v1::AddAppRequest {
            name: "Payroll".into(),
            redirect_uris: vec![RP_CALLBACK.into()],
            device: device.into(),
            mfa: v1::MfaPolicy::None.into(),
            public: false,
            ..v1::AddAppRequest::default()
        })
        .await?
        .into_inner();
    let client_id = app.app.context("app")?.client_id;
    admin
        .add_user(v1::AddUserRequest {
            email: USER.into(),
            name: "Alice Suzuki".into(),
            groups: vec![],
            kind: v1::UserKind::User.into(),
        })
        .await?;
    let temporary = admin
        .reset_password(v1::ResetPasswordRequest { email: USER.into() })
        .await?
        .into_inner()
        .temporary_password;
    let mut browser = latchkey_tests::web::Browser::new(server.https_addr, &server.ca_pem)?;
    let (req, csrf) =
        login::open_sign_in(&mut browser, &bench_authorize_url(&client_id), "Payroll").await?;
    let page = login::submit_password(&mut browser, &req, &csrf, USER, &temporary).await?;
    if !login::asks_new_password(&page) {
        bail!("expected the new-password form: {}", page.body);
    }
    let changed = login::choose_password(&mut browser, &req, &page).await?;
    if changed.status != 303 {
        bail!("password change: {}", changed.body);
    }
    Ok(client_id)
}

/// The authorize URL of the bench's sign-ins.
fn bench_authorize_url(client_id: &str) -> String {
    login::authorize_url(client_id, RP_CALLBACK, "bench")
}

/// `/authorize`, then the sign-in form with the password set in
/// [`sso_setup`]; returns the page after it.
async fn password_step(
    browser: &mut latchkey_tests::web::Browser,
    client_id: &str,
) -> Result<latchkey_tests::web::WebResponse> {
    login::sign_in(
        browser,
        &bench_authorize_url(client_id),
        "Payroll",
        USER,
        PASSWORD,
    )
    .await
}

async fn bench_device_auth(
    logins: usize,
    answer_only: bool,
    in_flight: Option<usize>,
    server_config: Option<&Path>,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), server_config).await?;
    let client_id = sso_setup(&server, v1::DevicePolicy::Bound).await?;
    let (agent, state) = enroll_agent(&server, dir.path(), USER).await?;
    let mut running = tokio::process::Command::new(&agent)
        .arg("--state-dir")
        .arg(&state)
        .arg("run")
        .env("LATCHKEY_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let agent_pid = running.id().context("agent pid")?;

    if answer_only {
        let database = if server_config.is_some() {
            "configured database"
        } else {
            "SQLite"
        };
        let result = match in_flight {
            Some(in_flight) => {
                device_storm(&server, &client_id, &state, logins, in_flight, database).await
            }
            None => device_calls(&server, &client_id, &state, logins, database).await,
        };
        running.kill().await?;
        server.stop().await?;
        return result;
    }
    // The URL handler opens the redemption link with `$BROWSER`: here a
    // script that writes it into a FIFO the bench reads (no polling), and
    // the bench's browser, which holds the sign-in's session, opens it.
    let fifo = dir.path().join("opened");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    if !made.success() {
        bail!("mkfifo failed");
    }
    let opener = dir.path().join("browser");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s\\n' \"$1\" > '{}'\n", fifo.display()),
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755))?;
    }
    let mut latencies = Vec::with_capacity(logins);
    let mut server_cpu = Vec::with_capacity(logins);
    let mut agent_cpu = Vec::with_capacity(logins);
    let mut attempt = 0;
    while latencies.len() < logins {
        attempt += 1;
        if attempt > logins + 50 {
            bail!("too many sign-ins failed");
        }
        let mut browser = latchkey_tests::web::Browser::new(server.https_addr, &server.ca_pem)?;
        let page = password_step(&mut browser, &client_id).await?;
        let (Some(txn), Some(next)) = (page.attr("data-txn"), page.attr("data-next")) else {
            // The agent's first posture report may not be in yet.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        // The page's long poll is waiting before the user clicks.
        let mut poller = latchkey_tests::web::Browser::new(server.https_addr, &server.ca_pem)?;
        poller.cookies = browser.cookies.clone();
        let wait_url = format!("/login/wait?txn={txn}");
        let wait = tokio::spawn(async move {
            let response = poller.get(&wait_url).await;
            (Instant::now(), response)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (server_before, agent_before) = (cpu_ns(server.pid)?, cpu_ns(agent_pid)?);
        let clicked = Instant::now();
        // What the URL handler runs when the button is pressed.
        let handled = tokio::process::Command::new(&agent)
            .arg("--state-dir")
            .arg(&state)
            .args(["open-url", &format!("latchkey://device-auth?txn={txn}")])
            .env("BROWSER", &opener)
            .stdout(std::process::Stdio::null())
            .status();
        let read_from = fifo.clone();
        let opened = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || std::fs::read_to_string(read_from)),
        )
        .await
        .context("the URL handler opened no link")???;
        let redeemed = browser.get(opened.trim()).await?;
        if !redeemed.body.contains("data-delivered") {
            bail!(
                "the redemption did not reach the sign-in: {}",
                redeemed.body
            );
        }
        let (_, response) = wait.await?;
        let body = response?.body;
        if !body.contains("confirmed") {
            bail!("the device did not confirm: {body}");
        }
        let landed = browser.get(&next).await?;
        let landed = browser.follow(landed).await?;
        let done = Instant::now();
        if !landed
            .location()
            .is_some_and(|l| l.starts_with(RP_CALLBACK))
        {
            bail!("no code after the confirmation: {}", landed.body);
        }
        // The handler exits once the server says the proof arrived.
        let handled = handled.await?;
        let (server_after, agent_after) = (cpu_ns(server.pid)?, cpu_ns(agent_pid)?);
        if !handled.success() {
            bail!("the URL handler failed");
        }
        latencies.push(done.duration_since(clicked).as_secs_f64() * 1000.0);
        server_cpu.push((server_after - server_before) as f64 / 1000.0);
        agent_cpu.push((agent_after - agent_before) as f64 / 1000.0);
    }
    for v in [&mut latencies, &mut server_cpu, &mut agent_cpu] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "device-auth: {logins} device-bound sign-ins, one after another; release latchkeyd, latchkey-agent run + open-url processes, {}",
        if server_config.is_some() {
            "configured database"
        } else {
            "SQLite"
        }
    );
    println!(
        "  click -> the app's page (redemption link opened, code issued)   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  server CPU per device-auth step   median {:.0} µs, p90 {:.0} µs (challenge, verification, redemption, the wait, the code)",
        percentile(&server_cpu, 50.0),
        percentile(&server_cpu, 90.0)
    );
    println!(
        "  running agent CPU per step        median {:.0} µs (local hand-off, challenge, signing, answer, delivery wait)",
        percentile(&agent_cpu, 50.0)
    );
    running.kill().await?;
    server.stop().await
}

/// `perf record --control fifo:FILE -D -1 …` with
/// `LATCHKEY_BENCH_PERF_CONTROL=FILE` profiles only the measured windows.
struct PerfControl(Option<std::fs::File>);

impl PerfControl {
    fn from_env() -> Result<Self> {
        Ok(PerfControl(
            match std::env::var_os("LATCHKEY_BENCH_PERF_CONTROL") {
                Some(path) => Some(std::fs::OpenOptions::new().write(true).open(path)?),
                None => None,
            },
        ))
    }

    fn send(&mut self, command: &str) -> Result<()> {
        if let Some(fifo) = self.0.as_mut() {
            use std::io::Write;
            fifo.write_all(command.as_bytes())?;
            fifo.flush()?;
        }
        Ok(())
    }

    fn enable(&mut self) -> Result<()> {
        self.send("enable\n")
    }

    fn disable(&mut self) -> Result<()> {
        self.send("disable\n")
    }
}

/// Server CPU spent on one call, in total and per thread name.
#[derive(Default)]
struct CallCpu {
    total: Vec<f64>,
    by_thread: BTreeMap<String, Vec<f64>>,
}

impl CallCpu {
    fn record(&mut self, before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
        let mut total = 0.0;
        for (name, ns) in after {
            let spent = ns.saturating_sub(before.get(name).copied().unwrap_or(0)) as f64 / 1000.0;
            total += spent;
            self.by_thread.entry(name.clone()).or_default().push(spent);
        }
        self.total.push(total);
    }

    fn print(mut self, what: &str) {
        self.total.sort_by(f64::total_cmp);
        println!(
            "  server CPU per {what:<18} median {:>5.0} µs, p90 {:>5.0} µs",
            percentile(&self.total, 50.0),
            percentile(&self.total, 90.0)
        );
        for (name, mut spent) in self.by_thread {
            spent.sort_by(f64::total_cmp);
            if spent.iter().sum::<f64>() > 0.0 {
                println!(
                    "    {name:<28} median {:>5.0} µs, mean {:>5.0} µs",
                    percentile(&spent, 50.0),
                    spent.iter().sum::<f64>() / spent.len() as f64
                );
            }
        }
    }
}

/// A new mTLS channel to the device API with the enrolled device's
/// certificate and key, as the running agent keeps one.
async fn device_client(
    server: &Server,
    state: &latchkey_agent::state::StateDir,
) -> Result<v1::device_service_client::DeviceServiceClient<tonic::transport::Channel>> {
    let key = latchkey_agent::keystore::load(state)?;
    let chain = state.certificate_chain()?;
    let channel =
        latchkey_agent::enroll::channel(&server.grpc_url, &server.ca_pem, Some((&chain, &key)))
            .await?;
    Ok(v1::device_service_client::DeviceServiceClient::new(channel))
}

/// The device's two calls made by the bench itself, with the enrolled
/// device's certificate and key over one mTLS channel (as the running agent
/// keeps one), so that each call's server CPU is measured on its own.
async fn device_calls(
    server: &Server,
    client_id: &str,
    state_dir: &Path,
    logins: usize,
    database: &str,
) -> Result<()> {
    let state = latchkey_agent::state::StateDir::new(state_dir.to_path_buf());
    let mut device = device_client(server, &state).await?;
    let (mut get, mut answer) = (CallCpu::default(), CallCpu::default());
    let mut perf = PerfControl::from_env()?;
    let mut attempt = 0;
    while answer.total.len() < logins {
        attempt += 1;
        if attempt > logins + 50 {
            bail!("too many sign-ins failed");
        }
        let mut browser = latchkey_tests::web::Browser::new(server.https_addr, &server.ca_pem)?;
        let page = password_step(&mut browser, client_id).await?;
        let (Some(txn), Some(next)) = (page.attr("data-txn"), page.attr("data-next")) else {
            // The agent's first posture report may not be in yet.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        perf.enable()?;
        let before = cpu_ns_by_thread(server.pid)?;
        let challenge = device
            .get_device_auth(v1::GetDeviceAuthRequest { txn_id: txn })
            .await?
            .into_inner();
        let between = cpu_ns_by_thread(server.pid)?;
        let signed = latchkey_agent::device_auth::sign_statement(&state, &challenge, None)?;
        let signed_at = cpu_ns_by_thread(server.pid)?;
        let answered = device
            .answer_device_auth(v1::AnswerDeviceAuthRequest { signed })
            .await?
            .into_inner();
        let after = cpu_ns_by_thread(server.pid)?;
        perf.disable()?;
        if !answered.confirmed {
            bail!("the device did not confirm: {}", answered.message);
        }
        get.record(&before, &between);
        answer.record(&signed_at, &after);
        // The proof reaches the browser that signed in.
        browser.get(&answered.redeem_url).await?;
        let landed = browser.get(&next).await?;
        let landed = browser.follow(landed).await?;
        if !landed
            .location()
            .is_some_and(|l| l.starts_with(RP_CALLBACK))
        {
            bail!("no code after the confirmation: {}", landed.body);
        }
    }
    println!(
        "device-auth --answer-only: {logins} device-bound sign-ins, one after another; the device's calls made by the bench over one mTLS channel, {database}"
    );
    get.print("GetDeviceAuth");
    answer.print("AnswerDeviceAuth");
    Ok(())
}

/// Many sign-ins answered at once, as at the start of a working day:
/// `logins` browser sign-ins reach the device step first, then their
/// transactions are answered `in_flight` at a time over eight mTLS channels
/// with the enrolled device's identity. Reports the server CPU per answer
/// (`GetDeviceAuth` + `AnswerDeviceAuth`) over the answering phase.
async fn device_storm(
    server: &Server,
    client_id: &str,
    state_dir: &Path,
    logins: usize,
    in_flight: usize,
    database: &str,
) -> Result<()> {
    let state = latchkey_agent::state::StateDir::new(state_dir.to_path_buf());
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(device_client(server, &state).await?);
    }

    // The device step appears once the agent's first posture report is in.
    let mut first = None;
    for _ in 0..100 {
        let mut browser = latchkey_tests::web::Browser::new(server.https_addr, &server.ca_pem)?;
        if let Some(txn) = password_step(&mut browser, client_id)
            .await?
            .attr("data-txn")
        {
            first = Some(txn);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = first.context("no device step after the password (no posture report?)")?;

    // The other sign-ins up to the device step, four at a time.
    let started = Instant::now();
    let signing_in = Arc::new(Semaphore::new(4));
    let mut tasks = Vec::with_capacity(logins);
    for _ in 1..logins {
        let (signing_in, client_id) = (signing_in.clone(), client_id.to_owned());
        let (addr, ca) = (server.https_addr, server.ca_pem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = signing_in.acquire_owned().await?;
            let mut browser = latchkey_tests::web::Browser::new(addr, &ca)?;
            let page = password_step(&mut browser, &client_id).await?;
            page.attr("data-txn").with_context(|| {
                format!(
                    "no device step after the password: {}",
                    page.body
                        .split("<main")
                        .nth(1)
                        .unwrap_or(&page.body)
                        .chars()
                        .take(400)
                        .collect::<String>()
                )
            })
        }));
    }
    let mut txns = vec![first];
    for task in tasks {
        txns.push(task.await??);
    }
    let signed_in = started.elapsed();

    // First every challenge is fetched, then every answer sent, each
    // phase `in_flight` at a time, so that each call's CPU is measured on
    // its own under load.
    let mut perf = PerfControl::from_env()?;
    let calls = Arc::new(Semaphore::new(in_flight));
    let state = Arc::new(state);
    perf.enable()?;
    let before = cpu_ns_by_thread(server.pid)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(logins);
    for (n, txn_id) in txns.into_iter().enumerate() {
        let calls = calls.clone();
        let mut device = channels[n % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            let _permit = calls.acquire_owned().await?;
            anyhow::Ok(
                device
                    .get_device_auth(v1::GetDeviceAuthRequest { txn_id })
                    .await?
                    .into_inner(),
            )
        }));
    }
    let mut challenges = Vec::with_capacity(logins);
    for task in tasks {
        challenges.push(task.await??);
    }
    let get = (started.elapsed(), cpu_ns_by_thread(server.pid)?);
    perf.disable()?;
    let mut answers = Vec::with_capacity(logins);
    for challenge in &challenges {
        answers.push(latchkey_agent::device_auth::sign_statement(
            &state, challenge, None,
        )?);
    }
    perf.enable()?;
    let before_answers = cpu_ns_by_thread(server.pid)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(logins);
    for (n, signed) in answers.into_iter().enumerate() {
        let calls = calls.clone();
        let mut device = channels[n % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            let _permit = calls.acquire_owned().await?;
            let answered = device
                .answer_device_auth(v1::AnswerDeviceAuthRequest { signed })
                .await?
                .into_inner();
            if !answered.confirmed {
                bail!("the device did not confirm: {}", answered.message);
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let answer = (started.elapsed(), cpu_ns_by_thread(server.pid)?);
    perf.disable()?;

    println!(
        "device-auth --answer-only --in-flight {in_flight}: {logins} sign-ins at the device step (reached in {:.1} s), then every challenge fetched and every answer sent, {in_flight} at a time over 8 mTLS channels, {database}",
        signed_in.as_secs_f64()
    );
    for (what, from, (elapsed, to)) in [
        ("GetDeviceAuth", &before, &get),
        ("AnswerDeviceAuth", &before_answers, &answer),
    ] {
        let per_call = |name: Option<&String>| {
            let spent: u64 = to
                .iter()
                .filter(|(n, _)| name.is_none_or(|name| *n == name))
                .map(|(n, ns)| ns.saturating_sub(from.get(n).copied().unwrap_or(0)))
                .sum();
            spent as f64 / logins as f64 / 1000.0
        };
        println!(
            "  {what:<17} {:>6.0} calls/s, server CPU per call {:>4.0} µs",
            logins as f64 / elapsed.as_secs_f64(),
            per_call(None)
        );
        for name in to.keys() {
            let spent = per_call(Some(name));
            if spent >= 0.5 {
                println!("    {name:<28} {spent:>5.0} µs");
            }
        }
    }
    Ok(())
}

fn bench_verify(count: usize) -> Result<()> {
    use base64::Engine;
    let key = latchkey_certs::jose::SigningKey::generate()?;
    let jwk = key.public_jwk()?;
    let decode = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v);
    let point = [vec![4u8], decode(&jwk.x)?, decode(&jwk.y)?].concat();
    let statement = serde_json::json!({
        "txn": "0123456789abcdef0123456789abcdef",
        "nonce": "n".repeat(43),
        "device_id": "0123456789abcdef0123456789abcdef",
        "aud": "https://id.example.com",
        "iat": 1_700_000_000,
    });
    let signed = latchkey_certs::jose::compact_jws(
        &key,
        latchkey_agent::device_auth::STATEMENT_TYP,
        "device",
        statement.to_string().as_bytes(),
    )?;
    let thread_cpu = || -> Result<u64> {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
        Ok(text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    };
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let before = thread_cpu()?;
        for _ in 0..count / 5 {
            if latchkey_certs::jose::verify_compact_p256(&point, &signed).is_none() {
                bail!("the statement did not verify");
            }
        }
        rounds.push((thread_cpu()? - before) as f64 / (count / 5) as f64 / 1000.0);
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "verify: {count} ES256 device statements checked on one thread: median of 5 rounds {:.1} µs CPU per verification (rounds {:.1}–{:.1})",
        percentile(&rounds, 50.0),
        rounds[0],
        rounds[rounds.len() - 1]
    );
    Ok(())
}

async fn bench_password_logins(attempts: usize, bursts: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), None).await?;
    let client_id = Arc::new(sso_setup(&server, v1::DevicePolicy::None).await?);
    println!(
        "password-logins: {bursts} bursts of {attempts} browser sign-ins started at once (authorize, sign-in page, password, redirect with a code; each request its own TLS connection); release latchkeyd, SQLite"
    );
    let (_, rss_start) = usage(server.pid)?;
    println!(
        "  server RSS before the first burst {:.1} MiB",
        rss_start as f64 / 1024.0
    );
    for burst in 1..=bursts {
        password_burst(&server, &client_id, attempts, burst).await?;
    }
    server.stop().await
}

async fn password_burst(
    server: &Server,
    client_id: &Arc<String>,
    attempts: usize,
    burst: usize,
) -> Result<()> {
    let cpu_before = cpu_ns(server.pid)?;
    let done = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (pid, done) = (server.pid, done.clone());
        tokio::spawn(async move {
            let mut peak = 0;
            while done.load(Ordering::Relaxed) < attempts {
                peak = peak.max(usage(pid).map(|(_, rss)| rss).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..attempts {
        let (addr, ca, client_id, done) = (
            server.https_addr,
            server.ca_pem.clone(),
            client_id.clone(),
            done.clone(),
        );
        tasks.spawn(async move {
            let outcome = async {
                let mut browser = latchkey_tests::web::Browser::new(addr, &ca)?;
                let page = password_step(&mut browser, &client_id).await?;
                let signed_in = page.location().is_some_and(|l| l.starts_with(RP_CALLBACK));
                anyhow::Ok((signed_in, Instant::now()))
            }
            .await;
            done.fetch_add(1, Ordering::Relaxed);
            outcome
        });
    }
    let (mut ok, mut failed, mut last) = (0usize, 0usize, started);
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok((true, at)) => {
                ok += 1;
                last = last.max(at);
            }
            Ok((false, _)) | Err(_) => failed += 1,
        }
    }
    let elapsed = last.duration_since(started).as_secs_f64();
    let peak = sampler.await?;
    let cpu = (cpu_ns(server.pid)? - cpu_before) as f64 / 1e9;
    let (_, rss_after) = usage(server.pid)?;
    println!(
        "  burst {burst}: completed {ok}, failed {failed}, in {elapsed:.2} s: {:.0} sign-ins/s; server CPU {:.1} ms per sign-in; RSS peak {:.1} MiB, after {:.1} MiB",
        ok as f64 / elapsed,
        cpu * 1000.0 / attempts as f64,
        peak as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Args::parse().command {
        Command::Enroll {
            agents,
            concurrency,
            server_config,
            refused,
        } => bench_enroll(agents, concurrency, server_config, refused).await,
        Command::LockFanout {
            devices,
            concurrency,
            external,
        } => bench_lock_fanout(devices, concurrency, external).await,
        Command::IdleAgent { seconds } => bench_idle_agent(seconds).await,
        Command::Verify { count } => bench_verify(count),
        Command::DeviceAuth {
            logins,
            answer_only,
            in_flight,
            server_config,
        } => bench_device_auth(logins, answer_only, in_flight, server_config.as_deref()).await,
        Command::PasswordLogins { attempts, bursts } => {
            bench_password_logins(attempts, bursts).await
        }
        Command::AppleFleet {
            devices,
            runs,
            in_flight,
            cycles_per_device,
            key_cache,
        } => {
            apple_fleet::bench(apple_fleet::Options {
                devices,
                runs,
                in_flight,
                cycles_per_device,
                key_cache,
            })
            .await
        }
        Command::AppleFleetServer {
            data_dir,
            push_socket,
            listen_grpc,
            listen_mqtt,
            listen_https,
            listen_https_device,
        } => {
            apple_fleet::serve(
                data_dir,
                push_socket,
                [listen_grpc, listen_mqtt, listen_https, listen_https_device],
            )
            .await
        }
    }
}
