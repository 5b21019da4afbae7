//! Property tests of the reconcile diff over random plans and local states.

use proptest::prelude::*;
use tessera_cfg::schema::CopyRole;
use tessera_janitor::{diff, Action, Local, LocalState, Wanted};

fn role(primary: bool) -> CopyRole {
    if primary {
        CopyRole::Primary
    } else {
        CopyRole::Replica
    }
}

prop_compose! {
    fn wanted_set()(items in prop::collection::btree_map(0u8..40, (0u8..3, any::<bool>(), 0u8..2), 0..30)) -> Vec<Wanted> {
        items.into_iter().map(|(p, (def, primary, parts))| Wanted {
            pindex: format!("p{p}"), index: "i".into(), definition: format!("d{def}"),
            partitions: (0..=u32::from(parts)).collect(), role: role(primary),
        }).collect()
    }
}

prop_compose! {
    fn local_set()(items in prop::collection::btree_map(0u8..40, (0u8..3, any::<bool>(), 0u8..2, 0u8..3), 0..30)) -> Vec<Local> {
        items.into_iter().map(|(p, (def, primary, parts, state))| Local {
            pindex: format!("p{p}"), index: "i".into(), definition: format!("d{def}"),
            partitions: (0..=u32::from(parts)).collect(), role: role(primary),
            state: match state { 0 => LocalState::Running, 1 => LocalState::Backfilling, _ => LocalState::Failed { attempts: 1, retry_at_ms: 10 } },
        }).collect()
    }
}

proptest! {
    #[test]
    fn actions_converge_and_respect_the_backfill_limit(wanted in wanted_set(), mut local in local_set(), limit in 1usize..4) {
        for round in 0..50 {
            let d = diff(&wanted, &local, 100, limit);
            let starts = d.actions.iter().filter(|a| matches!(a, Action::Start { .. })).count();
            let backfilling = local.iter().filter(|l| l.state == LocalState::Backfilling && wanted.iter().any(|w| w.pindex == l.pindex)).count();
            prop_assert!(backfilling + starts <= limit.max(backfilling), "round {}: {} backfilling + {} starts over limit {}", round, backfilling, starts, limit);
            if d.actions.is_empty() && d.queued.is_empty() {
                break;
            }
            for action in d.actions {
                match action {
                    Action::Stop { pindex, .. } => {
                        prop_assert!(local.iter().any(|l| l.pindex == pindex), "stopped {} it does not have", pindex);
                        local.retain(|l| l.pindex != pindex);
                    }
                    Action::Start { pindex, index, partitions, role } => {
                        prop_assert!(!local.iter().any(|l| l.pindex == pindex), "started {} twice", pindex);
                        let definition = wanted.iter().find(|w| w.pindex == pindex).map(|w| w.definition.clone()).unwrap_or_default();
                        local.push(Local { pindex, index, definition, partitions, role, state: LocalState::Backfilling });
                    }
                    Action::Restart { pindex, definition } => {
                        let l = local.iter_mut().find(|l| l.pindex == pindex).expect("restart of a local PIndex");
                        l.definition = definition;
                        l.state = LocalState::Backfilling;
                    }
                    Action::ChangeRole { pindex, role } => {
                        local.iter_mut().find(|l| l.pindex == pindex).expect("role change of a local PIndex").role = role;
                    }
                }
            }
            local.iter_mut().for_each(|l| l.state = LocalState::Running);
        }
        let d = diff(&wanted, &local, 100, limit);
        prop_assert!(d.actions.is_empty() && d.queued.is_empty(), "no fixed point: {:?}", d);
        prop_assert_eq!(local.len(), wanted.len());
    }
}
