package main

import (
	"os"
	"testing"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// TestMain checks that the package's tests leave the host's libvirt
// directories as they found them and no libvirtd namespace behind.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
