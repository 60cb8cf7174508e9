//! `h323-caller`: an H.323 test caller for the end-to-end tests of jonction's H.323 front.
//!
//! It dials the gateway with jonction's own sans-IO H.225.0 ([`jonction::h323::call`]) and
//! H.245 ([`jonction::h323::h245`]) machines, in one of four call flows (fast start, tunnelled
//! H.245, separate H.245, fast start refused then tunnelled H.245), sends a tone over RTP,
//! measures what comes back, sends and records DTMF (H.245 UserInputIndication), hangs up
//! (or waits for the gateway to), and prints one JSON line on stdout. Progress goes to stderr.
//! With `--video FILE` it also offers H.264 (H.241), opens a video channel over H.245, sends
//! the file's pictures, counts what the gateway sends back, asks for a keyframe
//! (videoFastUpdatePicture) and can cap the gateway's video bit rate (FlowControlCommand).
//!
//! ```text
//! h323-caller --gateway 10.200.0.1:1720 --called ROOM --mode tunnel --codec pcmu \
//!     --tone-hz 1000 --seconds 6 --digits 1234# --digits-at 2.0
//! ```
//!
//! Exit code 0 when the call connected, the fast-start outcome is the one the mode expects,
//! and the call ended as asked (we hung up after `--seconds`, or with `--wait-release` the
//! gateway ended it); 1 otherwise (the JSON line is printed either way).

mod caller;
mod flow;
mod media;
mod report;
mod video;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The call flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Fast start (both directions of --codec), H.245 tunnelled after Connect for DTMF.
    Faststart,
    /// No fast start, H.245 tunnelled; we open our audio channel.
    Tunnel,
    /// No fast start, no tunnelling: H.245 on its own TCP connection.
    Separate,
    /// Fast start the gateway must refuse (PCMU one way, PCMA the other), then as `tunnel`.
    Refused,
}

impl Mode {
    /// As in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Faststart => "faststart",
            Mode::Tunnel => "tunnel",
            Mode::Separate => "separate",
            Mode::Refused => "refused",
        }
    }
}

/// The audio codec sent (and offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722.
    G722,
}

/// H.323 test caller: dials the gateway, sends a tone, measures what comes back, prints JSON.
#[derive(Debug, Clone, Parser)]
#[command(name = "h323-caller", version)]
pub struct Cli {
    /// The gateway's H.225.0 call-signalling address.
    #[arg(long)]
    pub gateway: SocketAddr,
    /// The called alias (h323-ID; also dialedDigits and Called Party Number when all digits).
    #[arg(long)]
    pub called: String,
    /// The call flow.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Our h323-ID (sourceAddress).
    #[arg(long, default_value = "h323-test")]
    pub calling: String,
    /// Our Calling Party Number (digits), if any.
    #[arg(long)]
    pub calling_number: Option<String>,
    /// The address our media sockets bind to and that we advertise (default: the local
    /// address of the route to the gateway).
    #[arg(long)]
    pub local_ip: Option<IpAddr>,
    /// The codec.
    #[arg(long, value_enum, default_value = "pcmu")]
    pub codec: CodecArg,
    /// Frequency of the tone we send.
    #[arg(long, default_value_t = 1000.0)]
    pub tone_hz: f64,
    /// Seconds of media before we hang up.
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
    /// DTMF to send as H.245 UserInputIndication, one per character.
    #[arg(long, default_value = "")]
    pub digits: String,
    /// When to start sending the digits, in seconds after media started.
    #[arg(long, default_value_t = 2.0)]
    pub digits_at: f64,
    /// Do not hang up: wait this many seconds (from Connect) for the gateway to end the call.
    #[arg(long)]
    pub wait_release: Option<f64>,
    /// Our H.245 terminalType for master/slave determination (50: terminal, below the
    /// gateway's 60, so the gateway is master; 60 makes it a coin toss).
    #[arg(long, default_value_t = 50)]
    pub terminal_type: u8,
    /// An H.264 Annex-B file (30 pictures/s, Constrained Baseline) to send over an H.245 video
    /// channel; also offers to receive H.264.
    #[arg(long)]
    pub video: Option<std::path::PathBuf>,
    /// Seconds after video started flowing from the gateway when we ask it for a keyframe
    /// (videoFastUpdatePicture).
    #[arg(long)]
    pub fast_update_at: Option<f64>,
    /// Caps the gateway's video channel at this many kbit/s (FlowControlCommand) once it is open.
    #[arg(long)]
    pub video_limit_kbps: Option<u32>,
    /// Declare H.264 in our capabilities but refuse the gateway's video channel (a room system
    /// out of video resources): the call must go on with audio.
    #[arg(long)]
    pub refuse_video: bool,
}

impl Cli {
    /// The overall limit of the run.
    pub fn hard_limit(&self) -> Duration {
        let s = self.seconds.max(self.wait_release.unwrap_or(0.0)).max(0.0) + 30.0;
        Duration::from_secs_f64(s.min(3600.0))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !(cli.seconds.is_finite() && cli.digits_at.is_finite() && cli.tone_hz.is_finite())
        || cli.seconds < 0.0
        || cli.digits_at < 0.0
        || cli.wait_release.is_some_and(|w| !w.is_finite() || w < 0.0)
    {
        eprintln!("h323-caller: --seconds, --digits-at and --wait-release must be >= 0");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("h323-caller: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let (report, ok) = runtime.block_on(flow::run(&cli));
    match serde_json::to_string(&report) {
        Ok(line) => println!("{line}"),
        Err(e) => println!("{{\"errors\":[\"report: {e}\"]}}"),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
