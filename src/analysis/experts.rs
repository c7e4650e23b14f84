//! Cognitive experts (MoE runs): the normalised pointwise mutual information between each
//! (layer, expert) being selected for a token and the token carrying a marker — thinking as
//! opposed to answering, a backtracking cue ("Wait", "等等"), or a language-switched span —
//! counted over one run or many. nPMI is in [-1, 1]: 1 when the expert fires exactly on the
//! marked tokens, 0 when independent, -1 when it never fires on them. A step's routing is how
//! its own token was routed (`trace`). Pure functions over `trace` types; must not depend on
//! `store`, `tui` or `engine`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::segment::{segment, MARKERS};
use super::text::StepText;
use crate::trace::{Flag, FlagKind, Phase, Routing, Step};

/// What a token can be marked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Think,
    Backtrack,
    LanguageSwitch,
}

impl Marker {
    pub const ALL: [Marker; 3] = [Marker::Think, Marker::Backtrack, Marker::LanguageSwitch];

    pub fn as_str(self) -> &'static str {
        match self {
            Marker::Think => "think",
            Marker::Backtrack => "backtrack",
            Marker::LanguageSwitch => "language_switch",
        }
    }

    pub fn parse(s: &str) -> Option<Marker> {
        Marker::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Which steps carry `marker`: thinking steps; the tokens of a backtracking cue that opens a
/// reasoning step; the steps of a language-switch flag.
pub fn mask(steps: &[Step], flags: &[Flag], marker: Marker) -> Vec<bool> {
    let mut out = vec![false; steps.len()];
    match marker {
        Marker::Think => {
            for (o, s) in out.iter_mut().zip(steps) {
                *o = s.phase == Phase::Think;
            }
        }
        Marker::Backtrack => {
            let text = StepText::new(steps);
            for rs in segment(steps).steps {
                let Some(m) = rs.marker.as_deref() else { continue };
                let backtrack = MARKERS.iter().any(|k| k.backtrack && k.text == m);
                if !backtrack {
                    continue;
                }
                let bytes = text.bytes_of(rs.span.clone());
                let Some(at) = text.text[bytes.clone()].find(m) else { continue };
                let cue = bytes.start + at..bytes.start + at + m.len();
                for i in text.steps_of(cue) {
                    if let Some(o) = out.get_mut(i) {
                        *o = true;
                    }
                }
            }
        }
        Marker::LanguageSwitch => {
            for f in flags.iter().filter(|f| f.kind == FlagKind::LanguageSwitch) {
                let end = (f.end as usize).min(steps.len());
                for o in out.iter_mut().take(end).skip(f.start as usize) {
                    *o = true;
                }
            }
        }
    }
    out
}

/// Co-occurrence counts of expert selection and a marker, over every routed token added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Routed tokens seen.
    pub tokens: u64,
    /// Of them, marked.
    pub marked: u64,
    /// Per (layer, expert): tokens routed to it, and of those, marked.
    pub experts: BTreeMap<(u16, u16), (u64, u64)>,
}

/// One expert's association with the marker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Association {
    pub layer: u16,
    pub expert: u16,
    pub npmi: f64,
    /// Tokens routed to it.
    pub count: u64,
    /// Of them, marked.
    pub marked: u64,
}

impl Counts {
    /// Adds one run: its routing (by step) and the marker mask of its steps.
    pub fn add(&mut self, routing: &[(u32, Routing)], mask: &[bool]) {
        for (i, r) in routing {
            let Some(&m) = mask.get(*i as usize) else { continue };
            self.tokens += 1;
            self.marked += u64::from(m);
            for l in &r.layers {
                let mut seen: Vec<u16> = l.experts.clone();
                seen.sort_unstable();
                seen.dedup();
                for e in seen {
                    let c = self.experts.entry((l.layer, e)).or_default();
                    c.0 += 1;
                    c.1 += u64::from(m);
                }
            }
        }
    }

    /// Every expert's nPMI with the marker, highest first (ties: by layer and expert).
    pub fn associations(&self) -> Vec<Association> {
        let n = self.tokens as f64;
        let mut out: Vec<Association> = self
            .experts
            .iter()
            .map(|(&(layer, expert), &(count, marked))| Association {
                layer,
                expert,
                npmi: npmi(n, self.marked as f64, count as f64, marked as f64),
                count,
                marked,
            })
            .collect();
        out.sort_by(|a, b| {
            b.npmi.total_cmp(&a.npmi).then(a.layer.cmp(&b.layer)).then(a.expert.cmp(&b.expert))
        });
        out
    }
}

/// nPMI of two events over `n` observations: `m` of one, `x` of the other, `both` of both.
/// -1 when they never co-occur, 1 when they always do; 0 when either never or always happens
/// (nothing to learn).
pub fn npmi(n: f64, m: f64, x: f64, both: f64) -> f64 {
    if n <= 0.0 || m <= 0.0 || x <= 0.0 || m >= n || x >= n {
        return 0.0;
    }
    if both <= 0.0 {
        return -1.0;
    }
    let pxy = both / n;
    if pxy >= 1.0 {
        return 1.0;
    }
    let pmi = (pxy / ((x / n) * (m / n))).ln();
    (pmi / -pxy.ln()).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::test_util::run_steps;
    use crate::trace::LayerRoute;

    fn route(layers: &[(u16, &[u16])]) -> Routing {
        Routing {
            layers: layers
                .iter()
                .map(|(l, e)| LayerRoute {
                    layer: *l,
                    experts: e.to_vec(),
                    weights: None,
                    router: None,
                })
                .collect(),
        }
    }

    #[test]
    fn the_expert_that_fires_only_on_wait_has_npmi_one() {
        let steps = run_steps(
            Some("Two plus two is five.\n\nWait, that is wrong. It is four.\n\nDone."),
            "Four.",
        );
        let m = mask(&steps, &[], Marker::Backtrack);
        let wait: Vec<usize> = (0..steps.len()).filter(|i| m[*i]).collect();
        assert!(!wait.is_empty());
        assert!(wait.iter().all(|i| steps[*i].text.contains("Wait")), "{wait:?}");
        // Expert 7 of layer 1 fires exactly on "Wait"; expert 3 on everything; expert 5 on
        // the tokens right after the cue (never with it).
        let routing: Vec<(u32, Routing)> = (0..steps.len())
            .map(|i| {
                let mut l1: Vec<u16> = vec![3];
                if m[i] {
                    l1.push(7);
                } else if i > 0 && m[i - 1] {
                    l1.push(5);
                } else {
                    l1.push(1 + (i % 2) as u16);
                }
                (i as u32, route(&[(0, &[0, 1]), (1, &l1)]))
            })
            .collect();
        let mut c = Counts::default();
        c.add(&routing, &m);
        let a = c.associations();
        assert_eq!((a[0].layer, a[0].expert), (1, 7));
        assert!((a[0].npmi - 1.0).abs() < 1e-12);
        let find = |l: u16, e: u16| a.iter().find(|x| x.layer == l && x.expert == e).unwrap();
        assert_eq!(find(1, 5).npmi, -1.0);
        // Always selected: independent of everything.
        assert_eq!(find(1, 3).npmi, 0.0);
        // Direct: nPMI = ln(p(x,y) / (p(x) p(y))) / -ln p(x,y).
        let (n, both, x) = (steps.len() as f64, 1.0f64, find(1, 1).count as f64);
        let mk = wait.len() as f64;
        let b1 = find(1, 1).marked as f64;
        let want = if b1 == 0.0 { -1.0 } else { (b1 / n / (x / n * mk / n)).ln() / -(b1 / n).ln() };
        assert!((find(1, 1).npmi - want).abs() < 1e-12);
        assert_eq!(both, 1.0);
    }

    #[test]
    fn npmi_matches_the_formula() {
        let (n, m, x, b) = (100.0f64, 20.0, 30.0, 12.0);
        let want = ((b / n) / ((x / n) * (m / n))).ln() / -(b / n).ln();
        assert!((npmi(n, m, x, b) - want).abs() < 1e-12);
        assert_eq!(npmi(10.0, 0.0, 3.0, 0.0), 0.0);
        assert_eq!(npmi(10.0, 5.0, 3.0, 0.0), -1.0);
        assert_eq!(Marker::parse("language_switch"), Some(Marker::LanguageSwitch));
        assert_eq!(Marker::parse("x"), None);
    }

    #[test]
    fn think_and_language_masks() {
        let steps = run_steps(Some("hmm"), "ok");
        let m = mask(&steps, &[], Marker::Think);
        assert_eq!(m, steps.iter().map(|s| s.phase == Phase::Think).collect::<Vec<_>>());
        let f = crate::analysis::flags::auto(
            1..2,
            FlagKind::LanguageSwitch,
            crate::trace::Severity::Warn,
            String::new(),
        );
        let m = mask(&steps, &[f], Marker::LanguageSwitch);
        assert_eq!(m.iter().filter(|x| **x).count(), 1);
        assert!(m[1]);
    }
}
