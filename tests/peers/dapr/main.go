// Command dapr-peer sends spans the way a Dapr sidecar (v1.18, pkg/runtime) does, through the
// same libraries: go.opentelemetry.io/otel/exporters/zipkin built with zipkin.New(url), or the
// OTLP trace exporters built from a Configuration's tracing.otel fields (endpointAddress,
// protocol, isSecure, headers), always behind the SDK's default batcher (2,048 spans queued,
// 512 a batch, one export at a time, no retry for Zipkin).
//
// It makes -rate spans a second for -seconds, each with -attr-bytes of attributes, then
// flushes and prints what its exporter reported, as JSON: spans made, exported, failed (the
// exporter returned an error: the batch is gone), and dropped (never exported: the batcher's
// queue was full).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

type headers map[string]string

func (h headers) String() string { return fmt.Sprint(map[string]string(h)) }
func (h headers) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want name=value, got %q", v)
	}
	h[name] = value
	return nil
}

// counting reports what the wrapped exporter did with each batch the batcher handed it.
type counting struct {
	sdktrace.SpanExporter
	exported, failed, batches, failedBatches atomic.Int64
	mu                                       sync.Mutex
	firstError                               string
}

func (c *counting) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.SpanExporter.ExportSpans(ctx, spans)
	c.batches.Add(1)
	if err != nil {
		c.failed.Add(int64(len(spans)))
		c.failedBatches.Add(1)
		c.mu.Lock()
		if c.firstError == "" {
			c.firstError = err.Error()
		}
		c.mu.Unlock()
		return err
	}
	c.exported.Add(int64(len(spans)))
	return nil
}

func exporter(ctx context.Context, zipkinURL, otlpEndpoint, protocol string, secure bool, h headers) (sdktrace.SpanExporter, error) {
	if zipkinURL != "" {
		return zipkin.New(zipkinURL)
	}
	var client otlptrace.Client
	switch protocol {
	case "grpc":
		options := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(otlpEndpoint), otlptracegrpc.WithHeaders(h)}
		if !secure {
			options = append(options, otlptracegrpc.WithInsecure())
		}
		client = otlptracegrpc.NewClient(options...)
	case "http":
		options := []otlptracehttp.Option{otlptracehttp.WithEndpoint(otlpEndpoint), otlptracehttp.WithHeaders(h)}
		if !secure {
			options = append(options, otlptracehttp.WithInsecure())
		}
		client = otlptracehttp.NewClient(options...)
	default:
		return nil, fmt.Errorf("protocol %q: want grpc or http", protocol)
	}
	return otlptrace.New(ctx, client)
}

func main() {
	zipkinURL := flag.String("zipkin", "", "Zipkin endpointAddress (a full URL)")
	otlpEndpoint := flag.String("otlp", "", "tracing.otel endpointAddress (host:port)")
	protocol := flag.String("protocol", "grpc", "tracing.otel protocol: grpc or http")
	secure := flag.Bool("secure", false, "tracing.otel isSecure")
	h := headers{}
	flag.Var(h, "header", "tracing.otel header name=value (repeatable)")
	rate := flag.Int("rate", 100, "spans a second")
	seconds := flag.Float64("seconds", 1, "how long to make spans")
	attrBytes := flag.Int("attr-bytes", 100, "bytes of attributes on each span")
	service := flag.String("service", "dapr-peer", "the app id (service.name)")
	flag.Parse()

	ctx := context.Background()
	exp, err := exporter(ctx, *zipkinURL, *otlpEndpoint, *protocol, *secure, h)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) // counted below instead
	counted := &counting{SpanExporter: exp}
	res := resource.NewSchemaless(attribute.String("service.name", *service))
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(counted), sdktrace.WithResource(res))
	tracer := provider.Tracer("dapr")

	payload := strings.Repeat("x", *attrBytes)
	made := int64(0)
	total := int64(float64(*rate) * *seconds)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	for made < total {
		<-tick.C
		due := min(int64(time.Since(start).Seconds()*float64(*rate)), total)
		for ; made < due; made++ {
			_, span := tracer.Start(ctx, "CallLocal/lessons/grade")
			span.SetAttributes(attribute.String("http.url", "/v1.0/invoke/lessons/method/grade"), attribute.String("payload", payload))
			span.End()
		}
	}
	tick.Stop()
	flushed, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_ = provider.ForceFlush(flushed)
	_ = provider.Shutdown(flushed)
	report := map[string]any{
		"spans":          made,
		"exported":       counted.exported.Load(),
		"failed":         counted.failed.Load(),
		"dropped":        made - counted.exported.Load() - counted.failed.Load(),
		"batches":        counted.batches.Load(),
		"failed_batches": counted.failedBatches.Load(),
		"first_error":    counted.firstError,
	}
	_ = json.NewEncoder(os.Stdout).Encode(report)
}
