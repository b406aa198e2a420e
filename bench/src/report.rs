//! The argon2 reference, the table, the targets, JSON and the SVG chart.

use std::{fmt::Write as _, time::Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version, password_hash::SaltString};
use serde::Serialize;

use crate::scenarios::{Result, Scenario};

#[derive(Serialize, Clone, Debug)]
pub struct Hash {
    /// One argon2id hash with the server's default parameters, in ms (median of 9).
    pub ms: f64,
    pub cores: usize,
    /// cores ÷ one-hash time: the most logins per second the CPU allows.
    pub limit: f64,
}

impl Hash {
    pub fn faster(self, other: Hash) -> Hash {
        if self.ms <= other.ms { self } else { other }
    }
}

pub fn measure_hash() -> Hash {
    let argon2 =
        Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19456, 2, 1, None).expect("params"));
    let salt = SaltString::from_b64("YmVuY2htYXJrc2FsdA").expect("salt");
    let _ = argon2.hash_password(b"warm up", &salt);
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let t0 = Instant::now();
            let _ = argon2.hash_password(b"bench password", &salt);
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ms = times[4];
    Hash { ms, cores, limit: cores as f64 * 1000.0 / ms }
}

pub fn line(r: &Result) -> String {
    format!(
        "{:<22} c={:<3} {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}{}",
        r.scenario.name(),
        r.concurrency,
        r.rps,
        r.p50_ms,
        r.p99_ms,
        r.errors,
        r.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
    )
}

pub fn table(results: &[Result]) -> String {
    let mut out = String::from(
        "| scenario | concurrency | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | peak RSS MB |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.scenario.name(),
            r.concurrency,
            r.requests,
            r.errors,
            r.rps,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.peak_rss_mb.map_or("-".into(), |m| format!("{m:.1}"))
        );
    }
    out
}

#[derive(Serialize, Debug)]
pub struct Summary {
    pub database: &'static str,
    /// Delay the latency proxy added each way between server and database, ms.
    pub database_latency_ms: Option<f64>,
    pub seconds_per_run: f64,
    pub hash: Hash,
    /// `me` req/s at c=64 ÷ the floor's (target ≥ 1.0).
    pub me_vs_floor_c64: Option<f64>,
    /// `me` with the session cache off, req/s at c=64 ÷ the floor's.
    pub me_cold_vs_floor_c64: Option<f64>,
    /// `me` req/s at c=64 ÷ `healthz` req/s at c=64 (stretch ≥ 0.5).
    pub me_vs_healthz_c64: Option<f64>,
    /// `me` p99 ÷ the floor's p99, at c=16 (target ≤ 2).
    pub me_p99_vs_floor_c16: Option<f64>,
    /// `me` p99 at c=16 in ms.
    pub me_p99_c16_ms: Option<f64>,
    /// `me` p50 at c=1 and c=16 in ms (with 1 ms each way: target ≤ 0.5).
    pub me_p50_c1_ms: Option<f64>,
    pub me_p50_c16_ms: Option<f64>,
    /// A revocation through one instance until another refuses the
    /// session: p50, p99, max in ms (targets: p99 ≤ 50, max ≤ 1 000).
    pub revocation_ms: Option<[f64; 3]>,
    /// `accessToken` req/s ÷ `me` req/s at c=64 (target ≥ 0.5).
    pub access_token_vs_me_c64: Option<f64>,
    /// The verifier library's verifications per second on one core (target
    /// ≥ 20 000): tokens it has seen before, and tokens new to it.
    pub verify_per_core: Option<f64>,
    pub verify_cold_per_core: Option<f64>,
    /// A sign-out until the verifier in this process refuses the session's
    /// token: p50, p99, max in ms (targets: p99 ≤ 50, max ≤ 1 000).
    pub token_revocation_ms: Option<[f64; 3]>,
    /// best `login` req/s ÷ hash limit (target ≥ 0.9).
    pub login_vs_hash_limit: Option<f64>,
    /// `me` p99 during a login flood ÷ without, at c=16 (target ≤ 2).
    pub flood_p99_ratio_c16: Option<f64>,
    /// Highest server RSS seen, MB (target ≤ 64 + 19 × hash workers).
    pub peak_rss_mb: Option<f64>,
}

fn find(results: &[Result], scenario: Scenario, concurrency: usize) -> Option<&Result> {
    results.iter().find(|r| r.scenario == scenario && r.concurrency == concurrency)
}

impl Summary {
    pub fn new(
        results: &[Result],
        hash: &Hash,
        database_url: &str,
        duration: std::time::Duration,
        latency: Option<std::time::Duration>,
    ) -> Self {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let rps = |s, c| find(results, s, c).map(|r| r.rps);
        let p99 = |s, c| find(results, s, c).map(|r| r.p99_ms);
        let p50 = |s, c| find(results, s, c).map(|r| r.p50_ms);
        let best_login =
            results.iter().filter(|r| r.scenario == Scenario::Login).map(|r| r.rps).reduce(f64::max);
        Self {
            database: if database_url.starts_with("postgres") { "postgresql" } else { "sqlite" },
            database_latency_ms: latency.map(|d| d.as_secs_f64() * 1000.0),
            seconds_per_run: duration.as_secs_f64(),
            hash: hash.clone(),
            me_vs_floor_c64: ratio(rps(Scenario::Me, 64), rps(Scenario::Floor, 64)),
            me_cold_vs_floor_c64: ratio(rps(Scenario::MeCold, 64), rps(Scenario::Floor, 64)),
            me_vs_healthz_c64: ratio(rps(Scenario::Me, 64), rps(Scenario::Healthz, 64)),
            me_p99_vs_floor_c16: ratio(p99(Scenario::Me, 16), p99(Scenario::Floor, 16)),
            me_p99_c16_ms: p99(Scenario::Me, 16),
            me_p50_c1_ms: p50(Scenario::Me, 1),
            me_p50_c16_ms: p50(Scenario::Me, 16),
            revocation_ms: find(results, Scenario::Revocation, 1).map(|r| [r.p50_ms, r.p99_ms, r.max_ms]),
            access_token_vs_me_c64: ratio(rps(Scenario::AccessToken, 64), rps(Scenario::Me, 64)),
            verify_per_core: rps(Scenario::Verify, 1),
            verify_cold_per_core: rps(Scenario::VerifyCold, 1),
            token_revocation_ms: find(results, Scenario::TokenRevocation, 1)
                .map(|r| [r.p50_ms, r.p99_ms, r.max_ms]),
            login_vs_hash_limit: best_login.map(|l| l / hash.limit),
            flood_p99_ratio_c16: ratio(p99(Scenario::MeDuringLoginFlood, 16), p99(Scenario::Me, 16)),
            peak_rss_mb: results.iter().filter_map(|r| r.peak_rss_mb).reduce(f64::max),
        }
    }

    pub fn describe(&self) -> String {
        let show = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.2}{unit}"));
        let rss_budget = 64.0 + 19.0 * self.hash.cores as f64;
        format!(
            "database {}{} | argon2 {:.1} ms, hash limit {:.1}/s\n\
             me÷floor @64: {} (target ≥ 1.0) | me-cold÷floor @64: {} | me÷healthz @64: {} (stretch ≥ 0.5) | \
             me p99÷floor p99 @16: {} (≤ 2) | me p99 @16: {} | me p50 @1/@16: {}/{} | login÷hash limit: {} (≥ 0.9) | \
             flood p99 ratio @16: {} (≤ 2) | revocation reaches another instance p50/p99/max: {} (p99 ≤ 50 ms, max ≤ 1 s) | \
             accessToken÷me @64: {} (≥ 0.5) | verifications/s per core, seen/new tokens: {}/{} (≥ 20000) | \
             sign-out reaches a verifier p50/p99/max: {} (p99 ≤ 50 ms, max ≤ 1 s) | \
             peak RSS: {} (≤ {rss_budget:.0} MB + the cache)",
            self.database,
            self.database_latency_ms.map(|ms| format!(" (+{ms} ms each way)")).unwrap_or_default(),
            self.hash.ms,
            self.hash.limit,
            show(self.me_vs_floor_c64, ""),
            show(self.me_cold_vs_floor_c64, ""),
            show(self.me_vs_healthz_c64, ""),
            show(self.me_p99_vs_floor_c16, ""),
            show(self.me_p99_c16_ms, " ms"),
            show(self.me_p50_c1_ms, " ms"),
            show(self.me_p50_c16_ms, " ms"),
            show(self.login_vs_hash_limit, ""),
            show(self.flood_p99_ratio_c16, ""),
            self.revocation_ms.map_or("n/a".into(), |[a, b, c]| format!("{a:.2}/{b:.2}/{c:.2} ms")),
            show(self.access_token_vs_me_c64, ""),
            self.verify_per_core.map_or("n/a".into(), |v| format!("{v:.0}")),
            self.verify_cold_per_core.map_or("n/a".into(), |v| format!("{v:.0}")),
            self.token_revocation_ms.map_or("n/a".into(), |[a, b, c]| format!("{a:.2}/{b:.2}/{c:.2} ms")),
            show(self.peak_rss_mb, " MB"),
        )
    }
}

#[derive(Serialize)]
pub struct Json<'a> {
    pub summary: &'a Summary,
    pub results: &'a [Result],
}

/// Two panels of grouped bars: throughput (log scale) and p99 latency (log
/// scale), by scenario, one colour per concurrency. Hand-written SVG: no
/// plotting dependency for one chart.
pub fn svg(results: &[Result], summary: &Summary) -> String {
    let scenarios: Vec<Scenario> =
        // The revocation delays are no throughput: they are in the summary, not the chart.
        Scenario::all()
            .into_iter()
            .filter(|s| {
                !matches!(s, Scenario::Revocation | Scenario::TokenRevocation)
                    && results.iter().any(|r| r.scenario == *s)
            })
            .collect();
    let mut levels: Vec<usize> = results.iter().map(|r| r.concurrency).collect();
    levels.sort_unstable();
    levels.dedup();
    let colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"];
    let (width, panel_h, top, left) = (980.0, 260.0, 40.0, 70.0);
    let plot_w = width - left - 20.0;
    let group_w = plot_w / scenarios.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / levels.len().max(1) as f64;
    let mut out = String::new();
    let height = top + 2.0 * (panel_h + 70.0) + 20.0;
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{left}" y="20" font-size="14">authgate on {} — argon2 {:.0} ms, {} cores</text>"#,
        summary.database, summary.hash.ms, summary.hash.cores
    );
    for (panel, (title, value)) in [
        ("requests per second (log scale)", Box::new(|r: &Result| r.rps) as Box<dyn Fn(&Result) -> f64>),
        ("p99 latency in ms (log scale)", Box::new(|r: &Result| r.p99_ms)),
    ]
    .into_iter()
    .enumerate()
    {
        let y0 = top + panel as f64 * (panel_h + 70.0) + 20.0;
        let values: Vec<f64> = results.iter().map(&value).filter(|v| *v > 0.0).collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min).max(0.01).log10().floor();
        let hi = values.iter().copied().fold(0.1f64, f64::max).log10().ceil().max(lo + 1.0);
        let y_of = |v: f64| y0 + panel_h - (v.max(10f64.powf(lo)).log10() - lo) / (hi - lo) * panel_h;
        let _ = write!(out, r#"<text x="{left}" y="{}" font-size="12">{title}</text>"#, y0 - 6.0);
        for decade in lo as i32..=hi as i32 {
            let v = 10f64.powi(decade);
            let y = y_of(v);
            let _ = write!(
                out,
                r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 6.0,
                y + 4.0,
                if v >= 1.0 { format!("{v:.0}") } else { format!("{v}") }
            );
        }
        for (g, scenario) in scenarios.iter().enumerate() {
            let gx = left + g as f64 * group_w + group_w * 0.1;
            for (l, level) in levels.iter().enumerate() {
                let Some(r) = find(results, *scenario, *level) else { continue };
                let v = value(r);
                let y = y_of(v);
                let x = gx + l as f64 * bar_w;
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} c={level}: {v:.2}</title></rect>"#,
                    bar_w * 0.9,
                    (y0 + panel_h - y).max(0.0),
                    colours[l % colours.len()],
                    scenario.name()
                );
            }
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + group_w * 0.4,
                y0 + panel_h + 16.0,
                scenario.name()
            );
        }
    }
    for (l, level) in levels.iter().enumerate() {
        let x = left + l as f64 * 110.0;
        let y = height - 12.0;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">concurrency {level}</text>"#,
            y - 10.0,
            colours[l % colours.len()],
            x + 16.0
        );
    }
    out.push_str("</svg>\n");
    out
}
