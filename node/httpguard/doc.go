// Package httpguard keeps an HTTP server answering while clients try to
// exhaust it with connections or slow bodies.
//
// A Listener bounds the connections it holds open, in total and per client
// IP address, closing the excess as soon as it is accepted: one address
// cannot take the slots of every other, and the total stays below the
// process's file-descriptor limit. BodyDeadlines gives every request body a
// read deadline that moves with what has arrived: after a grace period the
// body must keep an average of at least a minimum rate, so a client that
// sends headers and then a byte now and then is cut off after the grace,
// while an honest upload of any size allowed gets as long as it needs at the
// minimum rate. Header reads are bounded by http.Server.ReadHeaderTimeout,
// which the caller sets.
package httpguard
