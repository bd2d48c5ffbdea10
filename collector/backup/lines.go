package backup

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// maxLineLength bounds what the parsers keep of one log line. Longer lines
// are cut there and the rest is skipped without being buffered, so a log
// with a 1 GB line costs 64 KiB of memory, not 1 GB.
const maxLineLength = 64 << 10

// lineReader yields the lines of a log one by one, with CRLF endings
// trimmed, invalid UTF-8 replaced and overlong lines truncated.
type lineReader struct {
	r    *bufio.Reader
	n    int64 // bytes consumed so far, for incremental parsing
	line string
	err  error
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// next advances to the next complete line. A last line without a newline is
// returned only at EOF when complete is false; incremental readers that
// expect more data ask for complete lines only.
func (l *lineReader) next(complete bool) bool {
	var buf []byte
	truncated := false
	var consumed int64
	for {
		chunk, err := l.r.ReadSlice('\n')
		consumed += int64(len(chunk))
		if !truncated {
			room := maxLineLength - len(buf)
			if len(chunk) > room {
				buf = append(buf, chunk[:room]...)
				truncated = true
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			l.n += consumed
			l.line = clean(buf)
			return true
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 && consumed == 0 {
				l.err = nil
				return false
			}
			if complete {
				// A partial last line: leave it for the next read.
				return false
			}
			l.n += consumed
			l.line = clean(buf)
			return true
		default:
			l.err = err
			return false
		}
	}
}

func clean(b []byte) string {
	b = bytes.TrimRight(b, "\r\n")
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}
