module github.com/libesp/libesp/bindings/go

go 1.24
