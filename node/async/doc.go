// Package async is Stoke's asynchronous invocation queue: it accepts Event
// invocations durably, delivers them at least once through the node's
// normal invoke path, retries them as Lambda does, and hands failed events
// to dead-letter targets and destinations.
//
// Payloads and records travel separately. An event's payload (up to 1 MB)
// is written to the accepting node's payload log and to the log of the next
// live node in id order (Config.Copies nodes in all), each write fsynced;
// only then is a small record (id, function, version, holders) committed to
// Raft, and only then does Invoke answer 202. So an acknowledged event
// survives the loss of any single node, the Raft log never carries a
// payload, and group commit keeps the cost per batch, not per event: every
// event accepted while earlier batches are in flight shares one fsync per
// holder and one Raft entry.
//
// The first holder alive in a node's gossip view owns an event's delivery:
// the acceptor while it lives, the next holder when it dies, which then
// also copies the payload to a new node and commits the new holder list
// (repair). Owners follow the replicated records (only the entries that
// changed since the last pass) and keep their events in a scheduler that
// runs each at the function's own concurrency through lambdaapi.Invoker.
// Function errors are retried MaximumRetryAttempts times about 1 and 2
// minutes apart, with the attempt count committed so it survives a change
// of owner; throttles and system errors back off from 1 s to 5 min until
// MaximumEventAgeInSeconds, measured from the leader's acceptance time.
// Outcomes are group-committed too, and an event is deleted from Raft (and
// its payload from the logs) once delivered or handed on; dead-lettered
// events stay, with their payloads, in the function's built-in dead-letter
// queue until redriven, purged or past their retention.
//
// See docs/architecture.md, "Async invocation", for the guarantee and its
// cost.
package async
