//! Room on the stack for the recursive walks over statement trees (binding,
//! planning, evaluation).
//!
//! The depth of those trees is bounded (`parse::nesting`, the binder's
//! expression limit), but not the size of a frame: in a debug build one level
//! of expression binding takes 60 KiB, so 30 levels fill a tokio worker's
//! 2 MiB. Each recursive step therefore goes through [`grow`], which moves
//! onto a new stack segment (allocated on the heap, as sqlparser does for its
//! own recursion) when the current one runs low.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Less than this left: continue on a new segment. Must exceed what any path
/// between two calls of [`grow`] uses.
const RED_ZONE: usize = 1 << 20;

/// Size of each new segment.
const SEGMENT: usize = 8 << 20;

/// Runs `f`, on a new stack segment if this one is nearly used up.
pub(crate) fn grow<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}

/// A future each poll of which runs with room on the stack ([`grow`]): the
/// executor's futures nest as deeply as the plan (an operator polls its
/// inputs, an expression its subqueries), and a debug build's poll frames
/// are large.
pub(crate) struct Grow<F>(pub F);

impl<F: Future + Unpin> Future for Grow<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = &mut self.0;
        grow(|| Pin::new(inner).poll(cx))
    }
}
