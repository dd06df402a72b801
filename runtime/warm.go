package runtime

// acquireWarm takes an idle sandbox of key, or fails with ErrNoWarmSandbox.
// It never reserves memory, evicts or waits.
func (p *Pool) acquireWarm(key string) (lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return lease{}, ErrClosed
	}
	sb := p.takeIdleLocked(key)
	if sb == nil {
		return lease{}, ErrNoWarmSandbox
	}
	return lease{sb: sb}, nil
}
