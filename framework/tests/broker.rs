//! The reset-group broker on the simulated bus: a broker holding the two-function reset group
//! 01:00.0 + 01:00.1, clients as threads each driving one function's copy engine through the
//! broker, and every fault the broker must survive: a client that dies mid-quiesce, one that
//! misses its deadline, lease violations, malformed messages, a second broker on one socket.
//! Every copy a surviving client submitted completes exactly once and lands intact.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use userpci_framework::broker::protocol::{
    read_frame, write_frame, BrokerMessage, ClientMessage, RemoteBudget, PROTOCOL_VERSION,
};
use userpci_framework::broker::{Broker, BrokerClient, BrokerConfig, SimLending};
use userpci_framework::device::config::{COMMAND, COMMAND_BUS_MASTER};
use userpci_framework::device::{PciFunction, PciFunctionExt, ResetMethod};
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{
    ParticipantConfig, Progress, ResetCause, ResetParticipant, ResetRequest, ResetScope,
};
use userpci_framework::testdev::{model, CopyEngineDriver};
use userpci_framework::{Error, Result};

const COPY: usize = 512;
const SLOTS: u32 = 15;

fn addr(text: &str) -> PciAddress {
    text.parse().unwrap()
}

/// 00:02.0 -> 01:00.0 (flr, bus) + 01:00.1 (flr): one reset group.
fn bus() -> Arc<SimBus> {
    let latency: toml::Table = "latency_ns = 1000000".parse().unwrap();
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "copy-engine")
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .params(latency.clone())
        .function("01:00.1", "copy-engine")
        .params(latency)
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    registry.register("copy-engine", model::factory);
    SimBus::new(topology, &registry).unwrap()
}

fn socket_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "userpci-broker-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A broker lending both functions of the group, and the functions (to inspect them).
struct Rig {
    bus: Arc<SimBus>,
    lending: Arc<SimLending>,
    functions: BTreeMap<&'static str, Arc<SimFunction>>,
    broker: Broker,
}

fn rig() -> Rig {
    let bus = bus();
    let functions: BTreeMap<_, _> = ["01:00.0", "01:00.1"]
        .into_iter()
        .map(|at| (at, Arc::new(bus.open(addr(at)).unwrap())))
        .collect();
    let lending = SimLending::new(functions.values().cloned());
    let broker = Broker::start(lending.clone(), BrokerConfig::new(socket_path())).unwrap();
    Rig {
        bus,
        lending,
        functions,
        broker,
    }
}

/// One client's engine, its buffers, and what its workload saw.
struct Engine {
    driver: CopyEngineDriver<Arc<SimFunction>>,
    source: DmaBuffer,
    destination: DmaBuffer,
    completions: BTreeMap<u32, u32>,
    failures: u32,
}

impl Engine {
    fn new(function: Arc<SimFunction>, seed: u8) -> Self {
        let space = function.dma_space().clone();
        let mut source = space
            .allocate_buffer(SLOTS as usize * COPY, DmaDirection::ToDevice)
            .unwrap();
        for (i, b) in source.as_mut_slice().iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7) ^ seed;
        }
        let destination = space
            .allocate_buffer(SLOTS as usize * COPY, DmaDirection::FromDevice)
            .unwrap();
        Engine {
            driver: CopyEngineDriver::new(function, 16).unwrap(),
            source,
            destination,
            completions: BTreeMap::new(),
            failures: 0,
        }
    }

    fn submit(&mut self, tag: u32) -> Result<()> {
        let offset = u64::from(tag) * COPY as u64;
        self.driver.submit(
            self.source.iova() + offset,
            self.destination.iova() + offset,
            COPY as u32,
            tag,
        )
    }

    fn poll(&mut self) {
        let (completions, failures) = (&mut self.completions, &mut self.failures);
        self.driver.poll_completions(&mut |c| {
            *completions.entry(c.tag).or_default() += 1;
            if !c.is_ok() {
                *failures += 1;
            }
        });
    }

    fn exactly_once(&self) -> bool {
        self.failures == 0
            && self.completions.len() == SLOTS as usize
            && self.completions.values().all(|&n| n == 1)
            && self.source.as_slice() == self.destination.as_slice()
    }
}

type SharedEngine = Arc<Mutex<Engine>>;

/// Quiesce collects what completed; recover re-initialises and re-submits what the reset
/// took back, once. `hang` never finishes quiescing.
struct EngineParticipant {
    address: PciAddress,
    engine: SharedEngine,
    hang: bool,
    abandoned: Arc<Mutex<Option<String>>>,
}

impl ResetParticipant for EngineParticipant {
    fn name(&self) -> String {
        format!("engine {}", self.address)
    }
    fn address(&self) -> PciAddress {
        self.address
    }
    fn begin_quiesce(&mut self) -> Result<()> {
        self.engine.lock().unwrap().poll();
        Ok(())
    }
    fn poll_quiesce(&mut self) -> Result<Progress> {
        Ok(if self.hang {
            Progress::Pending
        } else {
            Progress::Done
        })
    }
    fn begin_recover(&mut self) -> Result<()> {
        let mut engine = self.engine.lock().unwrap();
        for tag in engine.driver.reinitialize()? {
            engine.submit(tag)?;
        }
        engine.driver.flush();
        Ok(())
    }
    fn poll_recover(&mut self) -> Result<Progress> {
        Ok(Progress::Done)
    }
    fn abandon(&mut self, reason: &str) {
        *self.abandoned.lock().unwrap() = Some(reason.to_string());
    }
}

/// A client process (a thread here) driving one function through the broker.
struct Client {
    client: BrokerClient<SimLending>,
    engine: SharedEngine,
    abandoned: Arc<Mutex<Option<String>>>,
}

fn client(rig: &Rig, name: &str, at: &str, priority: u32, hang: bool) -> Client {
    let client = BrokerClient::connect(rig.broker.socket(), name, rig.lending.clone()).unwrap();
    let function = client.open(addr(at)).unwrap();
    let engine = Arc::new(Mutex::new(Engine::new(function, priority as u8)));
    let abandoned = Arc::new(Mutex::new(None));
    let quiesce_budget = if hang {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(5)
    };
    client
        .register(
            Box::new(EngineParticipant {
                address: addr(at),
                engine: Arc::clone(&engine),
                hang,
                abandoned: Arc::clone(&abandoned),
            }),
            ParticipantConfig {
                priority,
                quiesce_budget,
                recover_budget: Duration::from_secs(5),
            },
        )
        .unwrap();
    {
        let mut engine = engine.lock().unwrap();
        for tag in 0..SLOTS {
            engine.submit(tag).unwrap();
        }
        engine.driver.flush();
    }
    Client {
        client,
        engine,
        abandoned,
    }
}

impl Rig {
    fn finish(&self, clients: &[&Client]) {
        self.bus.clock().advance(Duration::from_millis(50));
        for c in clients {
            c.engine.lock().unwrap().poll();
        }
    }

    fn bus_master(&self, at: &str) -> bool {
        self.functions[at].read_config_u16(COMMAND).unwrap() & COMMAND_BUS_MASTER != 0
    }
}

fn group_reset(at: &str) -> ResetRequest {
    ResetRequest::new(addr(at), ResetCause::Timeout).with_scope(ResetScope::Group)
}

#[test]
fn two_clients_share_one_bus_reset_in_priority_order_with_every_copy_once() {
    let rig = rig();
    let a = client(&rig, "a", "01:00.0", 10, false);
    let b = client(&rig, "b", "01:00.1", 1, false);
    let outcome = a.client.request_reset(group_reset("01:00.0")).unwrap();
    assert!(outcome.all_recovered(), "{outcome:?}");
    assert_eq!(outcome.members.len(), 2);
    assert_eq!(outcome.report["kind"], "bus");
    for at in ["01:00.0", "01:00.1"] {
        assert_eq!(rig.bus.stats(addr(at)).unwrap().bus_resets, 1, "{at}");
    }
    // b (priority 1) recovered before a (priority 10): recover records in timeline order.
    let recovers: Vec<String> = outcome.report["timeline"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["phase"] == "recover")
        .map(|r| r["member"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovers.len(), 2, "{recovers:?}");
    assert!(
        recovers[0].starts_with("engine 0000:01:00.1 (client"),
        "{recovers:?}"
    );
    rig.finish(&[&a, &b]);
    assert!(a.engine.lock().unwrap().exactly_once());
    assert!(b.engine.lock().unwrap().exactly_once());
    assert!(a.client.fenced().is_empty() && b.client.fenced().is_empty());
    let leases = rig.broker.leases();
    assert!(
        leases[0].holder.as_deref().unwrap().contains("(a, pid"),
        "{leases:?}"
    );
    assert!(
        leases[1].holder.as_deref().unwrap().contains("(b, pid"),
        "{leases:?}"
    );
}

#[test]
fn a_client_that_misses_its_quiesce_deadline_is_fenced_and_the_other_recovers() {
    let rig = rig();
    let a = client(&rig, "a", "01:00.0", 10, false);
    let b = client(&rig, "b", "01:00.1", 1, true);
    let outcome = rig.broker.request_reset(group_reset("01:00.0")).unwrap();
    let report = &outcome.report;
    let by = |at: &str| {
        report
            .members
            .iter()
            .find(|m| m.address == addr(at))
            .unwrap()
    };
    assert!(by("01:00.0").outcome.is_ok(), "{report:?}");
    let failed = format!("{:?}", by("01:00.1").outcome);
    assert!(
        failed.contains("missed its quiesce deadline (100 ms, real time)"),
        "{failed}"
    );
    rig.finish(&[&a]);
    assert!(a.engine.lock().unwrap().exactly_once());
    // Fenced: no bus mastering, the client told, its participant abandoned, its lease gone.
    assert!(!rig.bus_master("01:00.1"));
    assert!(rig.bus_master("01:00.0"));
    let fenced = wait_for(|| b.client.fenced().pop());
    assert_eq!(fenced.0, addr("01:00.1"));
    assert!(b.abandoned.lock().unwrap().is_some());
    let err = b.client.request_reset(group_reset("01:00.1")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("broker refused: 0000:01:00.1: not in the lease of client")
            && err.to_string().contains(&format!(
                "its lease was revoked (quiesce failed: client {} (b, pid ",
                b.client.id()
            )),
        "{err}"
    );
}

#[test]
fn a_client_that_dies_mid_quiesce_is_fenced_and_its_function_can_be_leased_again() {
    let rig = rig();
    let a = client(&rig, "a", "01:00.0", 10, false);
    // A client speaking the protocol by hand, which dies when asked to quiesce.
    let mut raw = RawClient::connect(&rig, "doomed");
    raw.expect_reply(&ClientMessage::Acquire {
        device: addr("01:00.1"),
    });
    raw.expect_reply(&ClientMessage::Register {
        device: addr("01:00.1"),
        name: "doomed".into(),
        budget: RemoteBudget {
            priority: 1,
            quiesce_ms: 5000,
            recover_ms: 5000,
        },
    });
    let dying = std::thread::spawn(move || {
        let hook: BrokerMessage = read_frame(&mut raw.stream).unwrap();
        assert!(matches!(hook, BrokerMessage::Hook { .. }), "{hook:?}");
        drop(raw);
    });
    let outcome = a.client.request_reset(group_reset("01:00.0")).unwrap();
    dying.join().unwrap();
    let failure = outcome
        .members
        .iter()
        .find(|m| m.address == addr("01:00.1"))
        .and_then(|m| m.failure.clone())
        .unwrap();
    assert!(
        failure.starts_with("quiesce failed: client ")
            && failure.ends_with(" (doomed, pid 1): disconnected"),
        "{failure}"
    );
    assert!(outcome
        .members
        .iter()
        .any(|m| m.address == addr("01:00.0") && m.failure.is_none()));
    rig.finish(&[&a]);
    assert!(a.engine.lock().unwrap().exactly_once());
    assert!(!rig.bus_master("01:00.1"));
    // The broker took the function back: a new client gets it and recovers in the next reset.
    wait_for(|| rig.broker.leases()[1].holder.is_none().then_some(()));
    let c = client(&rig, "c", "01:00.1", 1, false);
    let outcome = c.client.request_reset(group_reset("01:00.1")).unwrap();
    assert!(outcome.all_recovered(), "{outcome:?}");
    rig.finish(&[&a, &c]);
    assert!(c.engine.lock().unwrap().exactly_once());
}

#[test]
fn a_client_may_only_touch_what_its_lease_covers() {
    let rig = rig();
    let a = client(&rig, "a", "01:00.0", 10, false);
    let b = BrokerClient::connect(rig.broker.socket(), "b", rig.lending.clone()).unwrap();
    let text = |r: Result<()>| r.unwrap_err().to_string();
    let label = format!("client {} (b, pid {})", b.id(), std::process::id());
    assert_eq!(
        text(b.open(addr("01:00.0")).map(drop)),
        format!(
            "broker refused: 0000:01:00.0: not in the lease of {label}: leased to client {} (a, pid {})",
            a.client.id(),
            std::process::id()
        )
    );
    assert!(text(b.request_reset(group_reset("01:00.0")).map(drop)).contains("leased to client"));
    assert_eq!(
        text(b.open(addr("02:00.0")).map(drop)),
        format!(
            "broker refused: 0000:02:00.0: not in the lease of {label}: this broker does not \
             lend it (it lends 0000:01:00.0, 0000:01:00.1)"
        )
    );
    let stray = EngineParticipant {
        address: addr("01:00.1"),
        engine: Arc::clone(&a.engine),
        hang: false,
        abandoned: Arc::new(Mutex::new(None)),
    };
    assert_eq!(
        text(b.register(Box::new(stray), ParticipantConfig::default())),
        format!(
            "broker refused: 0000:01:00.1: not in the lease of {label}: it is not leased; \
             acquire it first"
        )
    );
    // Nothing of that touched a's function.
    assert_eq!(rig.bus.stats(addr("01:00.0")).unwrap().bus_resets, 0);
    assert!(rig.bus_master("01:00.0"));
}

#[test]
fn malformed_messages_get_an_error_and_the_broker_keeps_serving() {
    let rig = rig();
    let a = client(&rig, "a", "01:00.0", 10, false);
    let mut raw = RawClient::connect(&rig, "garbled");
    raw.stream.write_all(&5u32.to_le_bytes()).unwrap();
    raw.stream.write_all(b"{oops").unwrap();
    let refused = raw.read_refusal();
    assert!(refused.contains("malformed message"), "{refused}");
    // Still connected and served.
    raw.expect_reply(&ClientMessage::Acquire {
        device: addr("01:00.1"),
    });
    // A length that cannot be right ends the connection with a reason.
    raw.stream.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let refused = raw.read_refusal();
    assert!(
        refused.contains("the limit is 1048576; closing the connection"),
        "{refused}"
    );
    assert!(
        read_frame::<BrokerMessage>(&mut raw.stream).is_err(),
        "closed"
    );
    // The other client is unaffected.
    let outcome = a.client.request_reset(group_reset("01:00.0")).unwrap();
    assert!(outcome.all_recovered(), "{outcome:?}");
    rig.finish(&[&a]);
    assert!(a.engine.lock().unwrap().exactly_once());
}

#[test]
fn a_client_must_say_hello_in_this_protocol_version_first() {
    let rig = rig();
    let mut raw = RawClient {
        stream: UnixStream::connect(rig.broker.socket()).unwrap(),
    };
    write_frame(
        &mut raw.stream,
        &ClientMessage::Acquire {
            device: addr("01:00.0"),
        },
    )
    .unwrap();
    let refused = raw.read_refusal();
    assert!(
        refused.starts_with("client ") && refused.ends_with(": send hello first"),
        "{refused}"
    );
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION + 1,
        name: "future".into(),
        pid: 7,
    };
    write_frame(&mut raw.stream, &hello).unwrap();
    let refused = raw.read_refusal();
    assert!(
        refused.ends_with(&format!(
            ": protocol version {}, this broker speaks {PROTOCOL_VERSION}",
            PROTOCOL_VERSION + 1
        )),
        "{refused}"
    );
    assert!(rig.broker.leases().iter().all(|l| l.holder.is_none()));
}

#[test]
fn a_second_broker_on_a_live_socket_is_refused_and_a_stale_one_is_replaced() {
    let rig = rig();
    let path = rig.broker.socket().to_path_buf();
    let other_bus = bus();
    let lend = || SimLending::new([Arc::new(other_bus.open(addr("01:00.0")).unwrap())]);
    let err = Broker::start(lend(), BrokerConfig::new(&path)).unwrap_err();
    assert!(matches!(err, Error::BrokerRunning { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "a broker is already serving {}; stop it first or choose another socket path",
            path.display()
        )
    );
    drop(rig);
    assert!(!path.exists(), "a stopped broker removes its socket");
    // A socket left by a broker that died (nobody answers) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let again = Broker::start(lend(), BrokerConfig::new(&path)).unwrap();
    drop(again);
    // Anything else at the path is left alone.
    std::fs::write(&path, b"not a socket").unwrap();
    let err = Broker::start(lend(), BrokerConfig::new(&path)).unwrap_err();
    assert!(
        err.to_string().contains("exists and is not a socket"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

/// Waits (bounded: a failure guard, not a timing assumption) for something another thread
/// does.
fn wait_for<T>(mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..20_000 {
        if let Some(value) = check() {
            return value;
        }
        std::thread::sleep(Duration::from_micros(250));
    }
    panic!("gave up waiting");
}

/// A client that speaks the protocol by hand.
struct RawClient {
    stream: UnixStream,
}

impl RawClient {
    fn connect(rig: &Rig, name: &str) -> Self {
        let mut raw = RawClient {
            stream: UnixStream::connect(rig.broker.socket()).unwrap(),
        };
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            name: name.into(),
            pid: 1,
        };
        raw.expect_reply(&hello);
        raw
    }

    fn expect_reply(&mut self, message: &ClientMessage) -> BrokerMessage {
        write_frame(&mut self.stream, message).unwrap();
        let reply: BrokerMessage = read_frame(&mut self.stream).unwrap();
        assert!(
            !matches!(reply, BrokerMessage::Refused { .. }),
            "{message:?}: {reply:?}"
        );
        reply
    }

    fn read_refusal(&mut self) -> String {
        match read_frame::<BrokerMessage>(&mut self.stream).unwrap() {
            BrokerMessage::Refused { message } => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

/// Quiesces only after `hold` has passed, and says when it began.
struct SlowQuiesce {
    inner: EngineParticipant,
    began: crossbeam::channel::Sender<()>,
    until: Option<std::time::Instant>,
}

impl ResetParticipant for SlowQuiesce {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn address(&self) -> PciAddress {
        self.inner.address()
    }
    fn begin_quiesce(&mut self) -> Result<()> {
        self.until = Some(std::time::Instant::now() + Duration::from_millis(50));
        let _ = self.began.send(());
        self.inner.begin_quiesce()
    }
    fn poll_quiesce(&mut self) -> Result<Progress> {
        Ok(match self.until {
            Some(until) if std::time::Instant::now() < until => Progress::Pending,
            _ => Progress::Done,
        })
    }
    fn begin_recover(&mut self) -> Result<()> {
        self.inner.begin_recover()
    }
    fn poll_recover(&mut self) -> Result<Progress> {
        self.inner.poll_recover()
    }
    fn abandon(&mut self, reason: &str) {
        self.inner.abandon(reason)
    }
}

#[test]
fn a_client_registering_during_a_reset_does_not_hold_up_its_own_hook_answers() {
    // The client's second registration waits for the running reset; the broker must still
    // route the client's quiesce answer for its first function meanwhile, or that function
    // misses its deadline and is fenced.
    let rig = rig();
    let client = BrokerClient::connect(rig.broker.socket(), "two", rig.lending.clone()).unwrap();
    let first = client.open(addr("01:00.0")).unwrap();
    let second = client.open(addr("01:00.1")).unwrap();
    let (began, quiescing) = crossbeam::channel::unbounded();
    let engine = Arc::new(Mutex::new(Engine::new(first, 1)));
    client
        .register(
            Box::new(SlowQuiesce {
                inner: EngineParticipant {
                    address: addr("01:00.0"),
                    engine: Arc::clone(&engine),
                    hang: false,
                    abandoned: Arc::new(Mutex::new(None)),
                },
                began,
                until: None,
            }),
            ParticipantConfig {
                priority: 0,
                quiesce_budget: Duration::from_secs(2),
                recover_budget: Duration::from_secs(5),
            },
        )
        .unwrap();
    let outcome = std::thread::scope(|s| {
        let reset = s.spawn(|| rig.broker.request_reset(group_reset("01:00.0")).unwrap());
        quiescing.recv().unwrap();
        client
            .register(
                Box::new(EngineParticipant {
                    address: addr("01:00.1"),
                    engine: Arc::new(Mutex::new(Engine::new(second, 2))),
                    hang: false,
                    abandoned: Arc::new(Mutex::new(None)),
                }),
                ParticipantConfig::default(),
            )
            .unwrap();
        reset.join().unwrap()
    });
    assert!(outcome.report.all_recovered(), "{:?}", outcome.report);
    assert!(client.fenced().is_empty(), "{:?}", client.fenced());
    assert!(rig.bus_master("01:00.0"));
}

#[test]
fn clients_of_a_broker_that_stopped_get_a_clear_error_and_a_restarted_broker_serves_again() {
    let rig = rig();
    let path = rig.broker.socket().to_path_buf();
    let a = client(&rig, "a", "01:00.0", 10, false);
    let Rig {
        bus,
        lending,
        functions,
        broker,
    } = rig;
    drop(broker);
    let err = a.client.request_reset(group_reset("01:00.0")).unwrap_err();
    assert!(matches!(err, Error::BrokerProtocol { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "broker at {}: broker protocol: the broker closed the connection",
            path.display()
        )
    );
    // A broker started again on the same path serves new clients; the old client's lease
    // died with the old broker.
    let broker = Broker::start(lending.clone(), BrokerConfig::new(&path)).unwrap();
    let restarted = Rig {
        bus,
        lending,
        functions,
        broker,
    };
    assert!(restarted.broker.leases().iter().all(|l| l.holder.is_none()));
    let b = client(&restarted, "b", "01:00.1", 1, false);
    let outcome = b.client.request_reset(group_reset("01:00.1")).unwrap();
    assert!(outcome.all_recovered(), "{outcome:?}");
    restarted.finish(&[&b]);
    assert!(b.engine.lock().unwrap().exactly_once());
}

#[test]
fn a_budget_over_the_brokers_limit_is_refused_naming_both() {
    let rig = rig();
    let client = BrokerClient::connect(rig.broker.socket(), "greedy", rig.lending.clone()).unwrap();
    let function = client.open(addr("01:00.1")).unwrap();
    let err = client
        .register(
            Box::new(EngineParticipant {
                address: addr("01:00.1"),
                engine: Arc::new(Mutex::new(Engine::new(function, 3))),
                hang: false,
                abandoned: Arc::new(Mutex::new(None)),
            }),
            ParticipantConfig {
                priority: 0,
                quiesce_budget: Duration::from_secs(5),
                recover_budget: Duration::from_secs(30),
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "broker refused: 0000:01:00.1: budgets quiesce 5000 ms, recover 30000 ms: expected 1 ms \
         to 10000 ms each"
    );
}
