//go:build !linux

package tail

import "errors"

// notifier is inotify's; elsewhere files are polled.
type notifier struct{}

func newNotifier() (*notifier, error) {
	return nil, errors.New("file notifications are Linux's inotify only")
}

func (n *notifier) watch(string, chan struct{}) (func(), error) {
	return nil, errors.New("no notifier")
}

func (n *notifier) close() {}
