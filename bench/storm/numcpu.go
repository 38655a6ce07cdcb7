package main

// flatOutSpawners is how many spawner threads run flat out: two, as the
// issue's targets are stated, so that a two-CPU machine keeps a CPU for the
// audit daemon between spawns.
const flatOutSpawners = 2
