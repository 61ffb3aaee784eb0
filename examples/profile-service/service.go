package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A session counts as active on a route while it made a request there this recently.
const activeWindow = 5 * time.Minute

// The bucket bounds the HTTP semantic conventions recommend for request durations.
var durationBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

type service struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
	sessions *sessions
}

func newService() *service {
	meter := otel.Meter("mathtrail/profile-service")
	duration, err := meter.Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(durationBounds...))
	if err != nil {
		panic(err) // only on an invalid instrument definition, which is fixed above
	}
	s := &service{tracer: otel.Tracer("mathtrail/profile-service"), duration: duration, sessions: newSessions()}
	// The Grafana "user activity" dashboard plots this per service and route.
	_, err = meter.Int64ObservableGauge("mathtrail.sessions.active",
		metric.WithUnit("{session}"),
		metric.WithDescription("Sessions that made a request on the route in the last five minutes."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for route, count := range s.sessions.active(time.Now()) {
				o.Observe(count, metric.WithAttributes(attribute.String("http.route", route)))
			}
			return nil
		}))
	if err != nil {
		panic(err)
	}
	return s
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	s.handle(mux, "GET /problems/{topic}", s.problem)
	s.handle(mux, "POST /answers/{topic}", s.answer)
	s.handle(mux, "GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

// handle registers h behind a server span, the duration histogram and session tracking, all
// labelled with the route (the pattern), never the raw path, so cardinality stays bounded.
func (s *service) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	method, route, _ := strings.Cut(pattern, " ")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, pattern, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		session := r.Header.Get("X-Session-Id")
		if session != "" {
			s.sessions.seen(route, session, started)
			span.SetAttributes(attribute.String("session.id", session))
		}

		recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(recorder, r.WithContext(ctx))

		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", method),
			attribute.String("http.route", route),
			attribute.Int("http.response.status_code", recorder.status),
		}
		span.SetAttributes(append(attrs, attribute.String("url.path", r.URL.Path))...)
		if recorder.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(recorder.status))
		}
		s.duration.Record(ctx, time.Since(started).Seconds(), metric.WithAttributes(attrs...))
	})
}

// problem makes an exercise; factoring is the CPU work that shows up in the profiles.
func (s *service) problem(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if topic != "factoring" && topic != "sums" {
		http.Error(w, fmt.Sprintf("unknown topic %q: want factoring or sums", topic), http.StatusNotFound)
		return
	}
	_, span := s.tracer.Start(r.Context(), "generate problem")
	n := 10_000 + rand.IntN(90_000)
	question := fmt.Sprintf("factor %d", n)
	if topic == "sums" {
		question = fmt.Sprintf("%d + %d", n, n/7)
	}
	answer := fmt.Sprint(factor(n))
	span.End()
	writeJSON(w, map[string]string{"topic": topic, "question": question, "answer_hint": answer[:1]})
}

func (s *service) answer(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Question string `json:"question"`
		Answer   string `json:"answer"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
		http.Error(w, "body: want JSON {\"question\": ..., \"answer\": ...}: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, map[string]bool{"recorded": body.Answer != ""})
}

// factor is deliberately naive trial division.
func factor(n int) []int {
	var factors []int
	for d := 2; d*d <= n; d++ {
		for n%d == 0 {
			factors = append(factors, d)
			n /= d
		}
	}
	if n > 1 {
		factors = append(factors, n)
	}
	return factors
}

func writeJSON(w http.ResponseWriter, value any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(value)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// sessions remembers when each session last used each route.
type sessions struct {
	mu       sync.Mutex
	lastSeen map[string]map[string]time.Time // route -> session -> time
}

func newSessions() *sessions {
	return &sessions{lastSeen: map[string]map[string]time.Time{}}
}

func (s *sessions) seen(route, session string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastSeen[route] == nil {
		s.lastSeen[route] = map[string]time.Time{}
	}
	s.lastSeen[route][session] = at
}

// active counts the sessions per route inside the window, forgetting older ones.
func (s *sessions) active(now time.Time) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[string]int64{}
	for route, bySession := range s.lastSeen {
		for session, at := range bySession {
			if now.Sub(at) > activeWindow {
				delete(bySession, session)
			}
		}
		counts[route] = int64(len(bySession))
	}
	return counts
}
