// Status at a glance: how many streams are live. Grows in the web UI issue.
import { app } from "../../../scripts/app.js";

app.registerExtension({
  name: "Trickle.Status",
});
