// Go peers of cio's benchmark programs (W1-W4, W6) and the W5 echo server.
//
//	peer-go WORKLOAD [N]      one result line, in cio's format
//	peer-go echo PORT         TCP echo server on 127.0.0.1:PORT
//	peer-go echo PORT CERT KEY  the same over TLS (crypto/tls, the PEM files given)
//
// The harness runs it with GOMAXPROCS=1 (pinned to one CPU, like every other
// single-threaded runtime) and again with Go's default GOMAXPROCS (unpinned),
// reported separately. The code is plain, idiomatic Go: goroutines, channels,
// sync.WaitGroup, sync.Mutex, time.AfterFunc, a goroutine per connection.
package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func peakRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}

func currentRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func mib(b int64) float64 { return float64(b) / (1024 * 1024) }

func nsPer(t0 time.Time, n int) float64 {
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

// W1: spawn n goroutines that return at once, then join them all.
func spawn(n int) {
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	fmt.Printf("spawn: %.1f ns/task, peak RSS %.1f MiB\n", nsPer(t0, n), mib(peakRSS()))
}

// W2: two goroutines pass a token n times over unbuffered channels.
func pingpong(n int) {
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		for i := 0; i < n; i++ {
			<-ping
			pong <- struct{}{}
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- struct{}{}
		<-pong
	}
	fmt.Printf("pingpong: %.1f ns/roundtrip\n", nsPer(t0, n))
}

// W3: n goroutines start together and each sleeps 1 s.
func sleepMany(n int) {
	var wg sync.WaitGroup
	rss0 := currentRSS()
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			time.Sleep(time.Second)
			wg.Done()
		}()
	}
	wg.Wait()
	beyond := float64(time.Since(t0).Nanoseconds())/1e6 - 1000
	peak := peakRSS()
	fmt.Printf("sleep_many: %d tasks, %.1f ms beyond 1 s, %.0f B/task, peak RSS %.1f MiB\n",
		n, beyond, float64(peak-rss0)/float64(n), mib(peak))
}

// W4: one goroutine yields n times.
func yield(n int) {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		runtime.Gosched()
	}
	fmt.Printf("yield: %.1f ns/yield\n", nsPer(t0, n))
}

// W6a: n timers scheduled (time.AfterFunc, delays 1..60 s from the shared
// LCG), then all stopped.
func timers(n int) {
	ts := make([]*time.Timer, n)
	never := func() { fmt.Fprintln(os.Stderr, "timers: a stopped timer ran"); os.Exit(1) }
	x := uint32(12345)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		x = x*1103515245 + 12345
		d := time.Second + time.Duration((x>>8)%59000)*time.Millisecond
		ts[i] = time.AfterFunc(d, never)
	}
	for _, t := range ts {
		t.Stop()
	}
	fmt.Printf("timers: %.1f ns/op\n", nsPer(t0, n))
}

// W6b: two goroutines pass a token n times through two buffered channels
// (Go's queue).
func queuePingpong(n int) {
	q1, q2 := make(chan int, 1024), make(chan int, 1024)
	go func() {
		for i := 0; i < n; i++ {
			q2 <- <-q1
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		q1 <- i
		<-q2
	}
	fmt.Printf("queue_pingpong: %.1f ns/roundtrip\n", nsPer(t0, n))
}

// W6c: 100 goroutines share one sync.Mutex; each locks it, yields once while
// holding it (so the others queue up), unlocks; n acquisitions in all.
func lockContended(n int) {
	const tasks = 100
	per := n / tasks
	if per < 1 {
		per = 1
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(tasks)
	for i := 0; i < tasks; i++ {
		go func() {
			for j := 0; j < per; j++ {
				mu.Lock()
				runtime.Gosched()
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	fmt.Printf("lock_contended: %.1f ns/op\n", nsPer(t0, per*tasks))
}

// W5: echo server, one goroutine per connection; with cert and key, over TLS.
func echo(port, cert, key string) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err == nil && cert != "" {
		var pair tls.Certificate
		pair, err = tls.LoadX509KeyPair(cert, key)
		if err == nil {
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				k, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
			}
		}(c)
	}
}

var defaults = map[string]int{
	"spawn": 1000000, "pingpong": 1000000, "sleep_many": 100000, "yield": 1000000,
	"timers": 1000000, "queue_pingpong": 1000000, "lock_contended": 1000000,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peer-go WORKLOAD [N] | peer-go echo PORT")
		os.Exit(2)
	}
	w := os.Args[1]
	if w == "echo" && len(os.Args) == 3 {
		echo(os.Args[2], "", "")
		return
	}
	if w == "echo" && len(os.Args) == 5 {
		echo(os.Args[2], os.Args[3], os.Args[4])
		return
	}
	n, ok := defaults[w]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown workload", w)
		os.Exit(2)
	}
	if len(os.Args) > 2 {
		f, err := strconv.ParseFloat(os.Args[2], 64)
		if err != nil || f < 1 {
			fmt.Fprintln(os.Stderr, "bad count", os.Args[2])
			os.Exit(2)
		}
		n = int(f)
	}
	switch w {
	case "spawn":
		spawn(n)
	case "pingpong":
		pingpong(n)
	case "sleep_many":
		sleepMany(n)
	case "yield":
		yield(n)
	case "timers":
		timers(n)
	case "queue_pingpong":
		queuePingpong(n)
	case "lock_contended":
		lockContended(n)
	}
}
