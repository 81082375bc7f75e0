//! The timeline as an SVG picture: a lane per member, a bar per phase, deadlines marked.

use std::fmt::Write;

use super::timeline::{Outcome, Phase, Timeline};

const LANE_HEIGHT: u32 = 34;
const LABEL_WIDTH: u32 = 170;
const PLOT_WIDTH: u32 = 700;
const TOP: u32 = 40;

fn colour(phase: Phase) -> &'static str {
    match phase {
        Phase::Plan => "#9e9e9e",
        Phase::Quiesce => "#f2a93b",
        Phase::Disable => "#8e6cc2",
        Phase::Reset => "#d9534f",
        Phase::WaitReady => "#5bc0de",
        Phase::Recover => "#5cb85c",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders `timeline` with `title` above it.
///
/// The time axis is linear from 0 to the end of the last phase or deadline; phases too short to
/// see at that scale are drawn 2 px wide and carry their duration in a tooltip (`<title>`).
/// Failed phases are outlined in black with a cross-hatch; a deadline is a dashed red line in
/// its member's lane.
pub fn render(timeline: &Timeline, title: &str) -> String {
    let members = timeline.members();
    // The axis covers the phases (plus a margin); a deadline beyond it is drawn at the right
    // edge with its time written next to it, so a 2 s budget does not squash 100 ms of work.
    let last_phase = timeline.end_ns().max(1);
    let end = last_phase + last_phase / 8;
    let x = |ns: u64| LABEL_WIDTH as f64 + ns as f64 / end as f64 * PLOT_WIDTH as f64;
    let height = TOP + LANE_HEIGHT * members.len() as u32 + 70;
    let width = LABEL_WIDTH + PLOT_WIDTH + 290;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="black" stroke-width="2"/></pattern></defs>"##
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (lane, member) in members.iter().enumerate() {
        let y = TOP + LANE_HEIGHT * lane as u32;
        let _ = writeln!(
            svg,
            r##"<rect x="0" y="{y}" width="{width}" height="{LANE_HEIGHT}" fill="{}"/>"##,
            if lane % 2 == 0 { "#f7f7f7" } else { "#ffffff" }
        );
        let _ = writeln!(
            svg,
            r#"<text x="10" y="{}">{}</text>"#,
            y + LANE_HEIGHT / 2 + 4,
            escape(member)
        );
        let mut late: Vec<String> = Vec::new();
        for record in timeline.phases.iter().filter(|p| p.member == *member) {
            let left = x(record.start_ns);
            let bar = (x(record.end_ns) - left).max(2.0);
            let failed = !record.outcome.is_ok();
            let _ = writeln!(
                svg,
                r#"<rect x="{left:.1}" y="{}" width="{bar:.1}" height="{}" fill="{}" stroke="{}"><title>{} {}: {:.3} ms ({})</title></rect>"#,
                y + 7,
                LANE_HEIGHT - 14,
                colour(record.phase),
                if failed { "black" } else { "none" },
                escape(member),
                record.phase,
                (record.end_ns - record.start_ns) as f64 / 1e6,
                match &record.outcome {
                    Outcome::Ok => "ok".to_string(),
                    Outcome::Failed(r) => format!("failed: {}", escape(r)),
                    Outcome::Skipped(r) => format!("skipped: {}", escape(r)),
                }
            );
            if failed {
                let _ = writeln!(
                    svg,
                    r#"<rect x="{left:.1}" y="{}" width="{bar:.1}" height="{}" fill="url(#hatch)" opacity="0.5"/>"#,
                    y + 7,
                    LANE_HEIGHT - 14
                );
            }
            if let Some(deadline) = record.deadline_ns {
                let beyond = deadline > end;
                let dx = x(deadline.min(end));
                let _ = writeln!(
                    svg,
                    r#"<line x1="{dx:.1}" y1="{}" x2="{dx:.1}" y2="{}" stroke="red" stroke-dasharray="3,2"><title>{} deadline at {:.3} ms</title></line>"#,
                    y + 3,
                    y + LANE_HEIGHT - 3,
                    record.phase,
                    deadline as f64 / 1e6
                );
                if beyond {
                    late.push(format!(
                        "{} ≤ {:.0} ms",
                        record.phase,
                        deadline as f64 / 1e6
                    ));
                }
            }
        }
        if !late.is_empty() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" fill="red" font-size="10">deadlines: {}</text>"#,
                LABEL_WIDTH + PLOT_WIDTH + 6,
                y + LANE_HEIGHT / 2 + 4,
                escape(&late.join(", "))
            );
        }
    }
    // Axis with five ticks in milliseconds.
    let axis_y = TOP + LANE_HEIGHT * members.len() as u32 + 8;
    let _ = writeln!(
        svg,
        r#"<line x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
        LABEL_WIDTH + PLOT_WIDTH
    );
    for tick in 0..=5u64 {
        let ns = end * tick / 5;
        let tx = x(ns);
        let _ = writeln!(
            svg,
            r#"<line x1="{tx:.1}" y1="{axis_y}" x2="{tx:.1}" y2="{}" stroke="black"/><text x="{tx:.1}" y="{}" text-anchor="middle">{:.1} ms</text>"#,
            axis_y + 5,
            axis_y + 18,
            ns as f64 / 1e6
        );
    }
    // Legend.
    let legend_y = axis_y + 40;
    let phases = [
        Phase::Plan,
        Phase::Quiesce,
        Phase::Disable,
        Phase::Reset,
        Phase::WaitReady,
        Phase::Recover,
    ];
    for (i, phase) in phases.iter().enumerate() {
        let lx = LABEL_WIDTH + 110 * i as u32;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{legend_y}">{phase}</text>"#,
            legend_y - 10,
            colour(*phase),
            lx + 16
        );
    }
    let _ = writeln!(
        svg,
        r#"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="red" stroke-dasharray="3,2"/><text x="{3}" y="{4}">deadline</text>"#,
        LABEL_WIDTH + 110 * 6,
        legend_y - 11,
        legend_y + 1,
        LABEL_WIDTH + 110 * 6 + 6,
        legend_y
    );
    svg.push_str("</svg>\n");
    svg
}
