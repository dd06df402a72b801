// Package check judges a chaos run from its recorded history alone. Each
// checker takes the operations clients recorded (chaos/history) and, where
// the invariant is about state, what the nodes reported afterwards, and
// says which invariant broke and with which operations. None of them talks
// to a cluster, so each is unit-tested on hand-written histories.
//
//   - Linearizable: control-plane operations per function against a
//     sequential model of Lambda's function, version and alias semantics
//     (porcupine; unknown outcomes stay pending for ever).
//   - LostWrites: acknowledged writes missing from the final state when
//     no later operation could have undone them.
//   - Deliveries: every acknowledged async event delivered at least once,
//     with duplicates counted.
//   - SyncInvocations: no wrong result ever, success rate per time bucket.
//   - Concurrency: the overlap of executions seen from inside the function
//     never above the limit.
//   - Converged: every node's replicated state hash identical.
package check
