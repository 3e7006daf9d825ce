package config

import (
	"fmt"
	"strings"
)

// evalRuby answers the embedded Ruby that real Fluentd configurations use
// inside double-quoted strings:
//
//	ENV['X']  ENV["X"]  ENV.fetch('X')  ENV.fetch('X', 'default')
//	ENV['X'] || 'default'  Socket.gethostname
//
// Anything else is refused: Sluice does not run Ruby.
func evalRuby(code string, o *Options) (string, error) {
	code = strings.TrimSpace(code)
	if lhs, rhs, ok := strings.Cut(code, "||"); ok {
		v, err := evalRuby(lhs, o)
		if err != nil {
			return "", err
		}
		if v != "" {
			return v, nil
		}
		def, ok := rubyString(strings.TrimSpace(rhs))
		if !ok {
			return "", unsupportedRuby(code)
		}
		return def, nil
	}
	switch {
	case code == "Socket.gethostname":
		h, err := o.Hostname()
		if err != nil {
			return "", fmt.Errorf("Socket.gethostname: %w", err)
		}
		return h, nil
	case strings.HasPrefix(code, "ENV[") && strings.HasSuffix(code, "]"):
		name, ok := rubyString(strings.TrimSpace(code[4 : len(code)-1]))
		if !ok {
			return "", unsupportedRuby(code)
		}
		v, _ := o.Getenv(name)
		return v, nil
	case strings.HasPrefix(code, "ENV.fetch(") && strings.HasSuffix(code, ")"):
		args := splitRubyArgs(code[len("ENV.fetch(") : len(code)-1])
		if len(args) == 0 || len(args) > 2 {
			return "", unsupportedRuby(code)
		}
		name, ok := rubyString(args[0])
		if !ok {
			return "", unsupportedRuby(code)
		}
		if v, found := o.Getenv(name); found {
			return v, nil
		}
		if len(args) == 1 {
			return "", fmt.Errorf("environment variable %s is not set (ENV.fetch without a default)", name)
		}
		def, ok := rubyString(args[1])
		if !ok {
			return "", unsupportedRuby(code)
		}
		return def, nil
	}
	return "", unsupportedRuby(code)
}

func unsupportedRuby(code string) error {
	return fmt.Errorf("embedded Ruby #{%s} is not supported (Sluice evaluates only ENV['NAME'], ENV.fetch('NAME', 'default'), ENV['NAME'] || 'default' and Socket.gethostname)", code)
}

// rubyString unquotes a Ruby string literal in single or double quotes.
func rubyString(s string) (string, bool) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
		return "", false
	}
	body := s[1 : len(s)-1]
	if strings.ContainsRune(body, rune(s[0])) && !strings.Contains(body, "\\") {
		return "", false
	}
	return strings.NewReplacer("\\\\", "\\", "\\'", "'", "\\\"", "\"").Replace(body), true
}

// splitRubyArgs splits "a, b" on commas outside quotes.
func splitRubyArgs(s string) []string {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == ',':
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}
