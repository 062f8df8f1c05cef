//go:build frameworks && esp

// The one line that moves perrow onto libesp's shared pool.
package main

import esp "github.com/libesp/libesp/bindings/go"

func init() { must(esp.Install()) }

func must(err error) {
	if err != nil {
		panic(err)
	}
}
