//! A Task's placement constraints as the allocator takes them: the group its
//! constraints count (the App it is an instance of, by its `mosaic.dev/app`
//! label) and each constraint in the allocator's terms.

use crate::allocator::{Constraint, Operator};
use kube::ResourceExt;
use mosaic_crds::Task;
use mosaic_crds::app::APP_LABEL;
use mosaic_crds::constraint::{Constraint as Spec, ConstraintOperator};

/// The group a task's allocation counts in: `namespace/app` for a task
/// labelled `mosaic.dev/app` (an App's instance, or a plain Task that joins
/// one), else none.
pub fn group(t: &Task) -> Option<String> {
    let app = t.labels().get(APP_LABEL)?;
    Some(format!("{}/{app}", t.namespace().unwrap_or_default()))
}

/// A task's constraints, ready for the allocator.
pub fn of(t: &Task) -> Vec<Constraint> {
    t.spec.constraints.iter().map(convert).collect()
}

fn convert(c: &Spec) -> Constraint {
    let op = match c.operator {
        ConstraintOperator::Unique => Operator::Unique,
        ConstraintOperator::Cluster => Operator::Cluster,
        ConstraintOperator::GroupBy => Operator::GroupBy,
        ConstraintOperator::Like => Operator::Like,
        ConstraintOperator::Unlike => Operator::Unlike,
        ConstraintOperator::MaxPer => Operator::MaxPer,
        ConstraintOperator::Is => Operator::Is,
    };
    Constraint::new(&c.field, op, c.value.as_deref())
}
