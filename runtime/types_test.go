package runtime

import (
	"errors"
	"testing"
	"time"
)

func TestFunctionSpecValidate(t *testing.T) {
	valid := FunctionSpec{
		Key: "f#1", FunctionName: "f", Runtime: "provided.al2023",
		MemoryMB: 128, Timeout: time.Second, CodeID: "code",
	}
	cases := []struct {
		name   string
		change func(*FunctionSpec)
		want   error // nil: valid
	}{
		{"valid", func(*FunctionSpec) {}, nil},
		{"five layers", func(f *FunctionSpec) { f.LayerIDs = []string{"1", "2", "3", "4", "5"} }, nil},
		{"empty Key", func(f *FunctionSpec) { f.Key = "" }, ErrInvalidFunction},
		{"empty FunctionName", func(f *FunctionSpec) { f.FunctionName = "" }, ErrInvalidFunction},
		{"memory too small", func(f *FunctionSpec) { f.MemoryMB = MinMemoryMB - 1 }, ErrInvalidFunction},
		{"memory too large", func(f *FunctionSpec) { f.MemoryMB = MaxMemoryMB + 1 }, ErrInvalidFunction},
		{"ephemeral storage too small", func(f *FunctionSpec) { f.EphemeralStorageMB = 511 }, ErrInvalidFunction},
		{"timeout too short", func(f *FunctionSpec) { f.Timeout = time.Second - 1 }, ErrInvalidFunction},
		{"timeout too long", func(f *FunctionSpec) { f.Timeout = 900*time.Second + 1 }, ErrInvalidFunction},
		{"empty CodeID", func(f *FunctionSpec) { f.CodeID = "" }, ErrInvalidFunction},
		{"six layers", func(f *FunctionSpec) { f.LayerIDs = []string{"1", "2", "3", "4", "5", "6"} }, ErrInvalidFunction},
		{"unknown runtime", func(f *FunctionSpec) { f.Runtime = "cobol85" }, ErrUnsupportedRuntime},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := valid
			tc.change(&f)
			def, err := f.validate()
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("validate: %v, want no error", err)
			case tc.want == nil && def.name != f.Runtime:
				t.Fatalf("validate returned runtime %q, want %q", def.name, f.Runtime)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("validate: %v, want %v", err, tc.want)
			}
		})
	}
}
