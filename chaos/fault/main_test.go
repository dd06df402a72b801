package fault

import (
	"os"
	"testing"

	"github.com/stokehq/stoke/chaos/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.RunMain(m)) }
