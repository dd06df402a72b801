package placement

import (
	"errors"
	"math"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"one virtual node", func(c *Config) { c.VirtualNodes = 1 }, true},
		{"max virtual nodes", func(c *Config) { c.VirtualNodes = MaxVirtualNodes }, true},
		{"zero virtual nodes", func(c *Config) { c.VirtualNodes = 0 }, false},
		{"too many virtual nodes", func(c *Config) { c.VirtualNodes = MaxVirtualNodes + 1 }, false},
		{"zero reference weight", func(c *Config) { c.ReferenceWeight = 0 }, false},
		{"load factor 1", func(c *Config) { c.LoadFactor = 1 }, false},
		{"load factor just above 1", func(c *Config) { c.LoadFactor = 1.0001 }, true},
		{"load factor max", func(c *Config) { c.LoadFactor = MaxLoadFactor }, true},
		{"load factor too large", func(c *Config) { c.LoadFactor = MaxLoadFactor + 1 }, false},
		{"load factor NaN", func(c *Config) { c.LoadFactor = math.NaN() }, false},
		{"load factor +Inf", func(c *Config) { c.LoadFactor = math.Inf(1) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewRingPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if err, _ := recover().(error); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("recovered %v, want an error wrapping ErrInvalidConfig", err)
		}
	}()
	NewRing(nodes(3), Config{})
}

func TestPointCount(t *testing.T) {
	cfg := DefaultConfig() // 40 points per 1024
	tests := []struct {
		weight uint32
		want   int
	}{
		{1, 1},                 // rounds to 0, raised to 1
		{gib(1), 40},           // the reference weight
		{gib(1) + 12, 40},      // rounds down
		{gib(1) + 13, 41},      // rounds up (40.5078)
		{gib(16), 640},         // proportional
		{gib(64), 64 * 40},     // the clamp
		{gib(65), 64 * 40},     // clamped
		{math.MaxUint32, 2560}, // no overflow
	}
	for _, tt := range tests {
		if got := pointCount(tt.weight, cfg); got != tt.want {
			t.Errorf("pointCount(%d) = %d, want %d", tt.weight, got, tt.want)
		}
	}
}
