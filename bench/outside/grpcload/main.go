// grpcload: an outside load client for cross-checking the bench's own (docs/performance.md), built
// on grpc-go, the library ghz is built on, from Debian's golang-google-grpc-dev (ghz itself is not
// packaged). Its options follow ghz's: a closed loop of -c calls in flight spread over
// --connections connections, for -z after a warm-up, the request given as serialized protobuf
// (ghz's --binary-file; `protoc --encode` makes one) and sent as it is, the answer not decoded;
// with --delimited the file holds several, each after its varint length (protobuf's delimited
// form), sent in turn (as ghz cycles through an array of messages). It prints one JSON line
// (count, rps, p50/p99/p999 in ms, errors).
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o grpcload bench/outside/grpcload/main.go
//	grpcload --call mci.catalog.v1.CatalogService/ResolveImage --binary-file req.bin \
//	  -m "authorization=Bearer $TOKEN" -c 16 --connections 4 -z 5s 127.0.0.1:50051
//
// --once sends one call and writes the answer's bytes to stdout (for `protoc --decode`).
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// raw sends the request's bytes as they are and keeps the answer's: no protobuf code is needed
// for the methods under test, and none of its cost is in the client's loop.
type raw struct{}

func (raw) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (raw) Name() string { return "proto" }

type result struct {
	Call       string  `json:"call"`
	InFlight   int     `json:"in_flight"`
	Conns      int     `json:"connections"`
	Count      int     `json:"count"`
	Sent       int64   `json:"sent"` // every call made, the warm-up's included
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(q * float64(len(sorted)))
	if k >= len(sorted) {
		k = len(sorted) - 1
	}
	return sorted[k]
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "grpcload: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	call := flag.String("call", "", "the method, package.Service/Method")
	binaryFile := flag.String("binary-file", "", "the serialized request")
	delimited := flag.Bool("delimited", false, "--binary-file holds length-delimited requests")
	md := flag.String("m", "", "metadata, key=value[,key=value]")
	concurrency := flag.Int("c", 16, "calls in flight")
	connections := flag.Int("connections", 4, "connections the calls are spread over")
	duration := flag.Duration("z", 5*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", time.Second, "calls before measuring, not counted")
	once := flag.Bool("once", false, "one call; its answer's bytes to stdout")
	window := flag.Int("window", 0, "a fixed flow-control window in bytes (0: grpc-go's dynamic one, with BDP pings)")
	flag.Parse()
	if *call == "" || flag.NArg() != 1 {
		fail("usage: grpcload --call pkg.Service/Method --binary-file F [-m k=v] [-c N] [--connections M] [-z 5s] [--once] HOST:PORT")
	}
	if *concurrency < 1 || *connections < 1 {
		fail("-c and --connections must be at least 1")
	}
	method := "/" + strings.TrimPrefix(*call, "/")
	requests := [][]byte{{}}
	if *binaryFile != "" {
		data, err := ioutil.ReadFile(*binaryFile)
		if err != nil {
			fail("%v", err)
		}
		requests = [][]byte{data}
		if *delimited {
			requests = nil
			for len(data) > 0 {
				size, n := binary.Uvarint(data)
				if n <= 0 || uint64(len(data)-n) < size {
					fail("%s: not length-delimited messages", *binaryFile)
				}
				requests = append(requests, data[n:n+int(size)])
				data = data[n+int(size):]
			}
			if len(requests) == 0 {
				fail("%s holds no request", *binaryFile)
			}
		}
	}
	ctx := context.Background()
	if *md != "" {
		var pairs []string
		for _, kv := range strings.Split(*md, ",") {
			parts := strings.SplitN(kv, "=", 2)
			if len(parts) != 2 {
				fail("-m wants key=value, got %q", kv)
			}
			pairs = append(pairs, strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]))
		}
		ctx = metadata.AppendToOutgoingContext(ctx, pairs...)
	}
	dial := []grpc.DialOption{grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(raw{}))}
	if *window > 0 {
		// A fixed flow-control window: grpc-go then stops its BDP estimation pings.
		dial = append(dial, grpc.WithInitialWindowSize(int32(*window)),
			grpc.WithInitialConnWindowSize(int32(*window)))
	}
	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		// Each Dial is a connection of its own.
		c, err := grpc.Dial(flag.Arg(0), dial...)
		if err != nil {
			fail("dial %s: %v", flag.Arg(0), err)
		}
		conns[i] = c
	}
	if *once {
		var answer []byte
		if err := conns[0].Invoke(ctx, method, &requests[0], &answer); err != nil {
			fmt.Fprintf(os.Stderr, "grpcload: %s: %s\n", status.Code(err), status.Convert(err).Message())
			os.Exit(1)
		}
		os.Stdout.Write(answer)
		return
	}

	var measuring, stopped int32
	var errors, sent int64
	var firstError atomic.Value
	latencies := make([][]float64, *concurrency)
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			conn := conns[w%len(conns)]
			var answer []byte
			for atomic.LoadInt32(&stopped) == 0 {
				request := requests[(atomic.AddInt64(&sent, 1)-1)%int64(len(requests))]
				start := time.Now()
				err := conn.Invoke(ctx, method, &request, &answer)
				elapsed := time.Since(start)
				if atomic.LoadInt32(&measuring) == 0 || atomic.LoadInt32(&stopped) != 0 {
					continue
				}
				if err != nil {
					if atomic.AddInt64(&errors, 1) == 1 {
						firstError.Store(err.Error())
					}
					continue
				}
				latencies[w] = append(latencies[w], float64(elapsed.Nanoseconds())/1e6)
			}
		}(w)
	}
	time.Sleep(*warmup)
	atomic.StoreInt32(&measuring, 1)
	opened := time.Now()
	time.Sleep(*duration)
	atomic.StoreInt32(&stopped, 1)
	seconds := time.Since(opened).Seconds()
	wg.Wait()

	var all []float64
	for _, l := range latencies {
		all = append(all, l...)
	}
	sort.Float64s(all)
	r := result{Call: *call, InFlight: *concurrency, Conns: *connections, Count: len(all),
		Sent: atomic.LoadInt64(&sent), Errors: errors, Seconds: seconds, RPS: float64(len(all)) / seconds,
		P50: percentile(all, 0.5), P99: percentile(all, 0.99), P999: percentile(all, 0.999)}
	if e, ok := firstError.Load().(string); ok {
		r.FirstError = e
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
