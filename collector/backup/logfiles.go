package backup

import (
	"fmt"
	"os"
)

// unreadableLog explains an appended log in which no line was recognised:
// empty, or none of its lines has the expected form.
func unreadableLog(path string, otherLines int, form string) error {
	if otherLines == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	return fmt.Errorf("%s has no %s", path, form)
}

func openLog(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, info, nil
}
