// profile-service is a small MathTrail-style service that shows how a service reports to the
// stack: traces and metrics with the OpenTelemetry Go SDK over OTLP/gRPC to trailhead, and
// continuous CPU and memory profiles with pyroscope-go to Pyroscope. otel-profiling-go links
// the two: while a request's span runs, its CPU samples carry pprof labels span_id (the local
// root span's id), span_name and trace_id, and the span carries pyroscope.profile.id, which
// is what Grafana's "Profiles for this span" looks up. In the cluster it runs with a Dapr
// sidecar (see deploy.yaml), whose own spans reach trailhead over Zipkin.
//
// Everything is configured by environment, as the SDK specifies: OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL; plus
// PYROSCOPE_SERVER_ADDRESS, PYROSCOPE_UPLOAD_RATE and LISTEN_ADDR.
package main

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	otelpyroscope "github.com/grafana/otel-profiling-go"
	"github.com/grafana/pyroscope-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	shutdown, err := startTelemetry(ctx)
	if err != nil {
		log.Fatalf("telemetry: %v", err)
	}
	profiler, err := startProfiling()
	if err != nil {
		log.Fatalf("profiling: %v", err)
	}

	listener, err := net.Listen("tcp", env("LISTEN_ADDR", ":8080"))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	server := &http.Server{Handler: newService().routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		drain, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = server.Shutdown(drain)
	}()
	log.Printf("listening on %s", listener.Addr())
	if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}

	// Flush what is buffered, so the last requests' spans, metrics and profiles are not lost.
	flush, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(flush); err != nil {
		log.Printf("telemetry shutdown: %v", err)
	}
	if err := profiler.Stop(); err != nil {
		log.Printf("profiler stop: %v", err)
	}
}

// startTelemetry installs the global tracer and meter providers, both exporting OTLP/gRPC.
func startTelemetry(ctx context.Context) (func(context.Context) error, error) {
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil {
		return nil, err
	}
	traces, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, err
	}
	metrics, err := otlpmetricgrpc.New(ctx)
	if err != nil {
		return nil, err
	}
	tracerProvider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(traces), sdktrace.WithResource(res))
	meterProvider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics)),
		sdkmetric.WithResource(res),
	)
	// Every tracer the service takes from otel.Tracer labels its CPU samples with the span.
	otel.SetTracerProvider(otelpyroscope.NewTracerProvider(tracerProvider))
	otel.SetMeterProvider(meterProvider)
	// Dapr propagates W3C trace context, so the service's spans join the sidecar's traces.
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return func(ctx context.Context) error {
		return errors.Join(tracerProvider.Shutdown(ctx), meterProvider.Shutdown(ctx))
	}, nil
}

// startProfiling sends CPU and heap profiles to Pyroscope, named like the traces' service.
func startProfiling() (*pyroscope.Profiler, error) {
	rate, err := time.ParseDuration(env("PYROSCOPE_UPLOAD_RATE", "15s"))
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for tag, variable := range map[string]string{"namespace": "POD_NAMESPACE", "pod": "POD_NAME"} {
		if value := os.Getenv(variable); value != "" {
			tags[tag] = value
		}
	}
	return pyroscope.Start(pyroscope.Config{
		ApplicationName: env("OTEL_SERVICE_NAME", "profile-service"),
		ServerAddress:   env("PYROSCOPE_SERVER_ADDRESS", "http://pyroscope:4040"),
		UploadRate:      rate,
		Tags:            tags,
		ProfileTypes: []pyroscope.ProfileType{
			pyroscope.ProfileCPU, pyroscope.ProfileAllocObjects, pyroscope.ProfileInuseSpace,
		},
	})
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
