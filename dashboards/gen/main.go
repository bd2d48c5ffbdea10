// Command gen writes the dashboards' JSON next to their Go source
// (`make dashboards`).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmhost-exporter/vmhost_exporter/dashboards"
)

func main() {
	dir := "dashboards"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	files, err := dashboards.Render()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
