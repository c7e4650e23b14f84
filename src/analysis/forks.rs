//! Forking tokens (Wang et al., "Beyond the 80/20 Rule", 2025): the tokens of a run with the
//! highest entropy (the top 20% by default), where the reasoning can branch. Each comes with
//! its recorded alternatives; `runs::forks` ranks them by how often continuations from those
//! alternatives change the final answer. Pure functions over `trace` steps; must not depend on
//! `store`, `tui` or `engine`.

use serde::Serialize;

use crate::trace::{Step, TopToken};

/// One forking token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fork {
    pub step: usize,
    pub token_id: u32,
    pub text: String,
    /// Entropy of the distribution the token was drawn from (nats).
    pub entropy: f32,
    pub logprob: f32,
    /// The recorded alternatives other than the chosen token, most likely first.
    pub alternatives: Vec<TopToken>,
}

/// How many of `n` tokens make the top `share`: at least one for a non-empty run.
pub fn count_for(n: usize, share: f64) -> usize {
    if n == 0 {
        return 0;
    }
    ((n as f64 * share).ceil() as usize).clamp(1, n)
}

/// The forking tokens of `steps`: the `share` of tokens with the highest entropy (NaN entropy
/// never counts), highest first (ties: the earlier step first), at most `top` of them when
/// given, each with at most `alternatives` of its alternatives.
pub fn forks(steps: &[Step], share: f64, top: Option<usize>, alternatives: usize) -> Vec<Fork> {
    let mut order: Vec<usize> = (0..steps.len()).filter(|i| !steps[*i].entropy.is_nan()).collect();
    order.sort_by(|a, b| steps[*b].entropy.total_cmp(&steps[*a].entropy).then(a.cmp(b)));
    let mut n = count_for(steps.len(), share).min(order.len());
    if let Some(t) = top {
        n = n.min(t);
    }
    order
        .into_iter()
        .take(n)
        .map(|i| {
            let s = &steps[i];
            let mut alts: Vec<TopToken> =
                s.top.iter().filter(|t| t.id != s.token_id).cloned().collect();
            alts.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
            alts.truncate(alternatives);
            Fork {
                step: i,
                token_id: s.token_id,
                text: s.text.clone(),
                entropy: s.entropy,
                logprob: s.logprob,
                alternatives: alts,
            }
        })
        .collect()
}

/// The forking steps in step order (for markers and jumping).
pub fn fork_steps(steps: &[Step], share: f64) -> Vec<usize> {
    let mut at: Vec<usize> = forks(steps, share, None, 0).into_iter().map(|f| f.step).collect();
    at.sort_unstable();
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Phase;

    fn steps(entropies: &[f32]) -> Vec<Step> {
        entropies
            .iter()
            .enumerate()
            .map(|(i, e)| Step {
                index: i as u32,
                token_id: 100 + i as u32,
                text: format!("w{i}"),
                logprob: -0.5,
                entropy: *e,
                phase: Phase::Think,
                t_us: 0,
                top: vec![
                    TopToken { id: 7, text: "a".into(), logprob: -2.0 },
                    TopToken { id: 100 + i as u32, text: format!("w{i}"), logprob: -0.5 },
                    TopToken { id: 8, text: "b".into(), logprob: -1.0 },
                ],
            })
            .collect()
    }

    #[test]
    fn the_top_share_by_entropy_matches_a_direct_sort() {
        let e: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 / 10.0).collect();
        let s = steps(&e);
        let got = forks(&s, 0.2, None, 5);
        // Direct: every step whose entropy is at least the 8th largest (ceil(37 * 0.2) = 8).
        let mut sorted = e.clone();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let cut = sorted[7];
        let mut want: Vec<usize> = (0..37).filter(|i| e[*i] >= cut).collect();
        want.sort_by(|a, b| e[*b].partial_cmp(&e[*a]).unwrap().then(a.cmp(b)));
        assert_eq!(got.iter().map(|f| f.step).collect::<Vec<_>>(), want);
        assert_eq!(got.len(), 8);
        // The chosen token is not among the alternatives, which are most likely first.
        let alts: Vec<u32> = got[0].alternatives.iter().map(|t| t.id).collect();
        assert_eq!(alts, vec![8, 7]);
        assert_eq!(forks(&s, 0.2, Some(3), 1).len(), 3);
        assert_eq!(forks(&s, 0.2, Some(3), 1)[0].alternatives.len(), 1);
        let mut by_step = want.clone();
        by_step.sort_unstable();
        assert_eq!(fork_steps(&s, 0.2), by_step);
    }

    #[test]
    fn small_and_unknown_runs() {
        assert!(forks(&[], 0.2, None, 5).is_empty());
        let s = steps(&[0.1, f32::NAN, 0.3]);
        let got = forks(&s, 0.2, None, 5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].step, 2);
        assert_eq!(count_for(3, 1.0), 3);
        let s = steps(&[f32::NAN]);
        assert!(forks(&s, 1.0, None, 5).is_empty());
    }
}
