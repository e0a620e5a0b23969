/* report.c: report.html, one self-contained page (inline SVG, no scripts):
 * the best models' test metrics as a table and a grouped bar chart, and each
 * model's validation curve over epochs from the history its run handed back.
 */
#include "mrec_tools.h"

#include "../nn/mrec_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const COLOURS[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"};

static void html_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

/* A model's label on a chart: the short name given, else the name up to its
 * first '_' (Elliot's run names carry every hyper-parameter after it). */
static void label(FILE *f, const mrec_report *r, int m) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s", r->short_names ? r->short_names[m] : r->models[m]);
    if (!r->short_names) buf[strcspn(buf, "_")] = 0;
    html_text(f, buf);
}

/* A metric shares the bars' scale when all its values lie in [0, 1]; counts (ItemCoverage), popularity
 * (ARP) and entropies would flatten the others, so they stay in the table only. */
static int charted(const mrec_report *r, int k) {
    for (int m = 0; m < r->n_models; m++) {
        double v = r->values[m * r->n_metrics + k];
        if (!(v >= 0 && v <= 1)) return 0;
    }
    return 1;
}

/* Bars: one group per model, one bar per metric. */
static void bar_chart(FILE *f, const mrec_report *r) {
    const int W = 760, H = 300, left = 50, bottom = 40, top = 20;
    double hi = 1e-9;
    for (int i = 0; i < r->n_models * r->n_metrics; i++)
        if (charted(r, i % r->n_metrics)) hi = r->values[i] > hi ? r->values[i] : hi;
    hi *= 1.1;
    fprintf(f, "<svg width=\"%d\" height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H + 20);
    int plot_h = H - bottom - top, group = (W - left - 10) / (r->n_models ? r->n_models : 1), bar = (group - 16) / (r->n_metrics ? r->n_metrics : 1);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, H - bottom, W - 10, H - bottom);
    for (int t = 0; t <= 4; t++) {
        double v = hi * t / 4;
        int y = H - bottom - (int)(plot_h * t / 4);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3f</text><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>\n",
                left - 4, y + 4, v, left, y, W - 10, y);
    }
    for (int m = 0; m < r->n_models; m++) {
        int x0 = left + m * group + 8;
        for (int k = 0; k < r->n_metrics; k++) {
            double v = r->values[m * r->n_metrics + k];
            if (!charted(r, k)) continue;
            int h = (int)(plot_h * v / hi);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>%.4f</title></rect>\n", x0 + k * bar,
                    H - bottom - h, bar - 2, h, COLOURS[k % 8], v);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\"><title>", x0 + bar * r->n_metrics / 2, H - bottom + 14);
        html_text(f, r->models[m]);
        fprintf(f, "</title>");
        label(f, r, m);
        fprintf(f, "</text>\n");
    }
    for (int k = 0; k < r->n_metrics; k++) {
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">", left + k * 110, H + 2,
                COLOURS[k % 8], left + k * 110 + 14, H + 11);
        html_text(f, r->metrics[k]);
        fprintf(f, "@%d%s</text>\n", r->k, charted(r, k) ? "" : " (table)");
    }
    fprintf(f, "</svg>\n");
}

/* Curves: the selection metric over epochs, one line per model. */
static void curves(FILE *f, const mrec_report *r) {
    const int W = 760, H = 300, left = 50, bottom = 30, top = 10;
    int n_pts[64] = {0}, max_epoch = 1;
    double hi = 1e-9;
    int n = r->n_models < 64 ? r->n_models : 64;
    for (int m = 0; m < n; m++) {
        n_pts[m] = r->n_history[m];
        for (int i = 0; i < n_pts[m]; i++) {
            const mrec_history_point *h = &r->history[m][i];
            max_epoch = h->epoch > max_epoch ? h->epoch : max_epoch, hi = h->value > hi ? h->value : hi;
        }
    }
    hi *= 1.1;
    fprintf(f, "<svg width=\"%d\" height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"11\">\n", W,
            H + 16 * ((n + 3) / 4));
    int pw = W - left - 10, ph = H - bottom - top;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, H - bottom, W - 10, H - bottom);
    for (int t = 0; t <= 4; t++) {
        int y = H - bottom - ph * t / 4;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3f</text><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>\n",
                left - 4, y + 4, hi * t / 4, left, y, W - 10, y);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", left + pw * t / 4, H - bottom + 14, max_epoch * t / 4);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", left + pw / 2, H - 2);
    for (int m = 0; m < n; m++) {
        if (n_pts[m]) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", COLOURS[m % 8]);
            for (int i = 0; i < n_pts[m]; i++)
                fprintf(f, "%.1f,%.1f ", left + pw * (double)r->history[m][i].epoch / max_epoch, H - bottom - ph * r->history[m][i].value / hi);
            fprintf(f, "\"/>\n");
        }
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">", left + (m % 4) * 180,
                H + 4 + 16 * (m / 4), COLOURS[m % 8], left + (m % 4) * 180 + 14, H + 13 + 16 * (m / 4));
        label(f, r, m);
        fprintf(f, "%s</text>\n", n_pts[m] ? "" : " (no curve)");
    }
    fprintf(f, "</svg>\n");
}

mrec_status mrec_report_write(const mrec_report *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/report.html", r->out);
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    FILE *f = af.f;
    fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
    html_text(f, r->title);
    fprintf(f, "</title>\n<style>body{font-family:sans-serif;max-width:800px;margin:2em auto}table{border-collapse:collapse}"
               "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>\n<h1>");
    html_text(f, r->title);
    fprintf(f, "</h1>\n<h2>Best model of each kind, test split</h2>\n<table><tr><th>model</th>");
    for (int k = 0; k < r->n_metrics; k++) {
        fprintf(f, "<th>");
        html_text(f, r->metrics[k]);
        fprintf(f, "@%d</th>", r->k);
    }
    fprintf(f, "</tr>\n");
    for (int m = 0; m < r->n_models; m++) {
        fprintf(f, "<tr><td>");
        html_text(f, r->models[m]);
        fprintf(f, "</td>");
        for (int k = 0; k < r->n_metrics; k++) fprintf(f, "<td>%.4f</td>", r->values[m * r->n_metrics + k]);
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
    bar_chart(f, r);
    if (r->history) {
        fprintf(f, "<h2>Validation curves (");
        html_text(f, r->select);
        fprintf(f, " at each evaluation)</h2>\n");
        curves(f, r);
    }
    if (r->note) {
        fprintf(f, "<p>");
        html_text(f, r->note);
        fprintf(f, "</p>\n");
    }
    fprintf(f, "</body></html>\n");
    return mrec_atomic_commit(&af);
}
