// Command safeflow runs, checks and tests clinic chat flows.
package main

import "os"

func main() { os.Exit(Main()) }
