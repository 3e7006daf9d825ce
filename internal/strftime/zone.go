package strftime

import (
	"fmt"
	"strings"
	"time"
)

// ParseZone accepts "+09:00", "+0900", "-03" and IANA names.
func ParseZone(s string) (*time.Location, error) {
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		digits := strings.ReplaceAll(s[1:], ":", "")
		var h, m int
		switch len(digits) {
		case 2:
			_, err := fmt.Sscanf(digits, "%02d", &h)
			if err != nil {
				return nil, fmt.Errorf("zone %q: %w", s, err)
			}
		case 4:
			if _, err := fmt.Sscanf(digits, "%02d%02d", &h, &m); err != nil {
				return nil, fmt.Errorf("zone %q: %w", s, err)
			}
		default:
			return nil, fmt.Errorf("zone %q: want +HH, +HHMM or +HH:MM", s)
		}
		off := h*3600 + m*60
		if s[0] == '-' {
			off = -off
		}
		return time.FixedZone(s, off), nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("zone %q: %w", s, err)
	}
	return loc, nil
}
