//! Which optimizer rules run.
//!
//! Every rule runs by default. Tests turn rules off one at a time
//! ([`crate::opttest`]'s `disable=` option) to show what each one changes:
//! a plan golden file that shows a rule's effect fails when the rule is
//! disabled or broken.

/// A rule of normalization or exploration that can be turned off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// [`super::norm::or_factor`].
    OrFactor,
    /// [`super::norm::scalar_subquery`].
    ScalarSubquery,
    /// [`super::norm::semi_join`].
    SemiJoin,
    /// [`super::norm::outer_join`].
    OuterJoin,
    /// [`super::norm::push_filter`].
    PushFilter,
    /// [`super::norm::fold_constants`].
    FoldConstants,
    /// [`super::norm::join_elimination`].
    JoinElimination,
    /// [`super::norm::merge_project`].
    MergeProject,
    /// [`super::norm::push_limit`].
    PushLimit,
    /// [`super::join_order`]: joins stay in the written order.
    JoinOrder,
    /// [`super::covering`]: every secondary index read looks up the
    /// primary row.
    Covering,
    /// [`super::prune`]: operators carry every column of their inputs.
    Prune,
}

impl Rule {
    pub const ALL: [Rule; 12] = [
        Rule::OrFactor,
        Rule::ScalarSubquery,
        Rule::SemiJoin,
        Rule::OuterJoin,
        Rule::PushFilter,
        Rule::FoldConstants,
        Rule::JoinElimination,
        Rule::MergeProject,
        Rule::PushLimit,
        Rule::JoinOrder,
        Rule::Covering,
        Rule::Prune,
    ];

    /// The rule's name in tests (its module's name).
    pub fn name(self) -> &'static str {
        match self {
            Rule::OrFactor => "or_factor",
            Rule::ScalarSubquery => "scalar_subquery",
            Rule::SemiJoin => "semi_join",
            Rule::OuterJoin => "outer_join",
            Rule::PushFilter => "push_filter",
            Rule::FoldConstants => "fold_constants",
            Rule::JoinElimination => "join_elimination",
            Rule::MergeProject => "merge_project",
            Rule::PushLimit => "push_limit",
            Rule::JoinOrder => "join_order",
            Rule::Covering => "covering",
            Rule::Prune => "prune",
        }
    }

    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// The set of rules to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Bit `r as u32` set: rule `r` is off.
    disabled: u32,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::all()
    }
}

impl Rules {
    /// Every rule (what statements are planned with).
    pub const fn all() -> Rules {
        Rules { disabled: 0 }
    }

    /// These rules, with `rule` off too.
    pub fn without(self, rule: Rule) -> Rules {
        Rules {
            disabled: self.disabled | 1 << rule as u32,
        }
    }

    pub fn enabled(self, rule: Rule) -> bool {
        self.disabled & (1 << rule as u32) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_on_until_turned_off_by_name() {
        let rules = Rules::all();
        assert!(Rule::ALL.iter().all(|r| rules.enabled(*r)));
        let off = rules.without(Rule::from_name("semi_join").expect("known rule"));
        assert!(!off.enabled(Rule::SemiJoin));
        assert!(off.enabled(Rule::PushFilter));
        assert_eq!(Rule::from_name("no_such_rule"), None);
    }
}
