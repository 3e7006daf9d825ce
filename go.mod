module github.com/sluice-log/sluice

go 1.26.8

require (
	github.com/fluent/fluent-logger-golang v1.10.2
	github.com/klauspost/compress v1.20.3
	github.com/tinylib/msgp v1.6.5
	go.uber.org/goleak v1.3.0
)

require github.com/philhofer/fwd v1.2.0 // indirect
