// Command chatrd runs chatr's components: one binary, one subcommand per
// component, so one image serves every Deployment the operator makes.
//
//	chatrd api | streamer | verifier | migrate | fakemoltbook | dev
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is a subcommand: it parses its own flags from args and runs until
// ctx ends (SIGTERM or SIGINT).
type command struct {
	summary string
	run     func(ctx context.Context, fs *flag.FlagSet, args []string) error
}

// commands is filled by each subcommand's file (init), so each component's
// wiring lives in a file of its own.
var commands = map[string]command{}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]].run == nil {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fs := flag.NewFlagSet("chatrd "+name, flag.ExitOnError)
	if err := servePprof(); err != nil {
		fmt.Fprintf(os.Stderr, "chatrd %s: %v\n", name, err)
		os.Exit(1)
	}
	if err := commands[name].run(ctx, fs, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "chatrd %s: %v\n", name, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chatrd <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nEvery flag can also be set by its environment variable (see chatrd <command> -h).")
}
