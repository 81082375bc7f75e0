//! Lends through the broker: descriptors cross from the broker to the client on a collect
//! connection of their own (as the device fd will over real VFIO), and a lend token works once.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use userpci_framework::broker::protocol::{
    read_frame, write_frame, BrokerMessage, ClientMessage, PROTOCOL_VERSION,
};
use userpci_framework::broker::{
    Broker, BrokerClient, BrokerConfig, Collector, Lend, Lender, SimLending,
};
use userpci_framework::device::{PciFunction, ResetTarget};
use userpci_framework::pci::PciAddress;
use userpci_framework::testdev::model;
use userpci_framework::Result;

fn addr(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn sim_lending() -> Arc<SimLending> {
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "copy-engine")
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    registry.register("copy-engine", model::factory);
    let bus = SimBus::new(topology, &registry).unwrap();
    SimLending::new([Arc::new(bus.open(addr("01:00.0")).unwrap())])
}

fn socket_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("userpci-{name}-{}.sock", std::process::id()))
}

/// Lends the simulated function plus the write end of a pipe whose read end the test keeps.
struct PipeLender {
    sim: Arc<SimLending>,
    read_end: Mutex<Option<std::io::PipeReader>>,
}

impl Lender for PipeLender {
    fn targets(&self) -> Vec<Arc<dyn ResetTarget>> {
        self.sim.targets()
    }
    fn lend(&self, device: PciAddress, client: u64) -> Result<Lend> {
        let (reader, writer) = std::io::pipe().unwrap();
        *self.read_end.lock().unwrap() = Some(reader);
        let mut lend = self.sim.lend(device, client)?;
        lend.fds.push(OwnedFd::from(writer));
        Ok(lend)
    }
}

/// Writes through the descriptor it receives, then opens the simulated function.
struct PipeCollector {
    sim: Arc<SimLending>,
}

impl Collector for PipeCollector {
    type Function = Arc<SimFunction>;
    fn collect(&self, device: PciAddress, mut lend: Lend) -> Result<Self::Function> {
        assert_eq!(lend.fds.len(), 1, "one descriptor crossed");
        let mut pipe = std::fs::File::from(lend.fds.pop().unwrap());
        pipe.write_all(b"written by the client").unwrap();
        self.sim.collect(device, lend)
    }
}

#[test]
fn a_lend_carries_its_descriptors_to_the_client() {
    let sim = sim_lending();
    let lender = Arc::new(PipeLender {
        sim: Arc::clone(&sim),
        read_end: Mutex::new(None),
    });
    let broker = Broker::start(lender.clone(), BrokerConfig::new(socket_path("lend-fds"))).unwrap();
    let client = BrokerClient::connect(
        broker.socket(),
        "fds",
        Arc::new(PipeCollector {
            sim: Arc::clone(&sim),
        }),
    )
    .unwrap();
    let function = client.open(addr("01:00.0")).unwrap();
    assert_eq!(function.address(), addr("01:00.0"));
    let mut text = String::new();
    let mut read_end = lender.read_end.lock().unwrap().take().unwrap();
    read_end.read_to_string(&mut text).unwrap();
    assert_eq!(text, "written by the client");
}

#[test]
fn a_lend_token_works_once_and_only_for_a_live_lease() {
    let broker = Broker::start(sim_lending(), BrokerConfig::new(socket_path("lend-once"))).unwrap();
    let mut session = UnixStream::connect(broker.socket()).unwrap();
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        name: "raw".into(),
        pid: 1,
    };
    write_frame(&mut session, &hello).unwrap();
    let _welcome: BrokerMessage = read_frame(&mut session).unwrap();
    write_frame(
        &mut session,
        &ClientMessage::Acquire {
            device: addr("01:00.0"),
        },
    )
    .unwrap();
    let BrokerMessage::Leased { token, .. } = read_frame(&mut session).unwrap() else {
        panic!("not leased");
    };
    let collect = |token| {
        let mut side = UnixStream::connect(broker.socket()).unwrap();
        write_frame(&mut side, &ClientMessage::Collect { token }).unwrap();
        read_frame::<BrokerMessage>(&mut side).unwrap()
    };
    assert!(matches!(collect(token), BrokerMessage::Lent { fds: 0, .. }));
    let BrokerMessage::Refused { message } = collect(token) else {
        panic!("a token used twice was served");
    };
    assert!(
        message.ends_with(&format!(": lend token {token:#x} is unknown or was used")),
        "{message}"
    );
    let BrokerMessage::Refused { message } = collect(token ^ 1) else {
        panic!("a made-up token was served");
    };
    assert!(message.contains("is unknown or was used"), "{message}");
    // A lend not collected before its lease ends is gone with the lease.
    let device = addr("01:00.0");
    let mut ask = |message: ClientMessage| {
        write_frame(&mut session, &message).unwrap();
        read_frame::<BrokerMessage>(&mut session).unwrap()
    };
    assert!(matches!(
        ask(ClientMessage::Release { device }),
        BrokerMessage::Done
    ));
    let BrokerMessage::Leased { token, .. } = ask(ClientMessage::Acquire { device }) else {
        panic!("not leased again");
    };
    assert!(matches!(
        ask(ClientMessage::Release { device }),
        BrokerMessage::Done
    ));
    assert!(matches!(collect(token), BrokerMessage::Refused { .. }));
}
