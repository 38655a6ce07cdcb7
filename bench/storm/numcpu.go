package main

import "runtime"

// numCPU is the number of flat-out spawners: one per core.
func numCPU() int { return runtime.NumCPU() }
