module github.com/sluice-log/sluice

go 1.26.8
