package controllers

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// traceReconciler makes each reconcile of r a span named "reconcile
// <kind>", the root of a trace of its own, with the object's namespace and
// name, and its outcome: an error (its message, which never holds a secret)
// or the requeue. Clerk calls made with the reconcile's context are its
// children (the manager's Clerk client is traced; see cmd/mcpgate). A nil
// tracer returns r as it is.
func traceReconciler(kind string, tracer trace.Tracer, r reconcile.Reconciler) reconcile.Reconciler {
	if tracer == nil {
		return r
	}
	name := "reconcile " + kind
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		ctx, span := tracer.Start(ctx, name, trace.WithNewRoot(), trace.WithAttributes(
			attribute.String("mcpgate.kind", kind),
			semconv.K8SNamespaceName(req.Namespace),
			attribute.String("mcpgate.object.name", req.Name),
		))
		defer span.End()
		res, err := r.Reconcile(ctx, req)
		switch {
		case err != nil:
			span.SetStatus(codes.Error, err.Error())
		case res.RequeueAfter > 0:
			span.SetAttributes(attribute.Float64("mcpgate.requeue_after_seconds", res.RequeueAfter.Seconds()))
		}
		return res, err
	})
}
