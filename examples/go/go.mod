module github.com/libesp/libesp/examples/go

go 1.24

require github.com/libesp/libesp v0.0.0

replace github.com/libesp/libesp => ../..
